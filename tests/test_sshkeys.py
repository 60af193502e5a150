"""OpenSSH public keys as people paste them (bot.sshkeys, pure): every accepted type with its
size and fingerprint (against ``ssh-keygen -l -E sha256`` when it is installed, and against
fixed vectors it printed), every refused kind with its reason, and every form of private key
refused as such, with none of its text in the result.

Private keys are made here with ``cryptography`` at test time: none is kept in the repository.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bot.sshkeys import (
    MAX_COMMENT_CHARS,
    MAX_INPUT_CHARS,
    PRIVATE_KEY_TEXT,
    KeyRefused,
    Problem,
    PublicKey,
    fingerprint_of,
    looks_like_private_key,
    parse_public_key,
    sanitize_comment,
    type_label,
)

SSH_KEYGEN = shutil.which("ssh-keygen")

# Keys made by OpenSSH 9.2's ssh-keygen and the fingerprints `ssh-keygen -l -E sha256` printed:
# (type, base64, comment, bits, fingerprint).
VECTORS = [
    (
        "ssh-ed25519",
        "AAAAC3NzaC1lZDI1NTE5AAAAIMriwK0HGx4j9ovFQSo8r5jVbJL7mqNfwwNcS+7fwRZi",
        "c ed25519",
        256,
        "SHA256:gAdiiThqA9XVTfn6WI2H0DFFauq61mjEUbxgfKFu9p8",
    ),
    (
        "ecdsa-sha2-nistp256",
        "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCuYMZfT4wlrzrqgXXGaErGjeTOx"
        "notIgy7NQUTlcKgcwIWbIinTEgKA1R+SHMFeVafVwkWJygrke/eNfszTT8U=",
        "c ecdsab256",
        256,
        "SHA256:vydScHsuaxioqQNcX6ebnRRrpa9zueAc8/leVXeE49U",
    ),
    (
        "ecdsa-sha2-nistp384",
        "AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBDEMzpmGyGPUF+imxjuZWTBqDOXY"
        "AEeOQ611z2rk72y1uiwwIrtMY8eJU2babG2NhoI+zkIdZzCPLC/2QyYAiaM1rVaIUKZSvmvvUXxvFBcx"
        "dVt0Qi33xgNR3/v+V+o/WQ==",
        "c ecdsab384",
        384,
        "SHA256:IDnZhu5USC9LnfmLvUDdTJ7H1sJaUuqqRNAxeOzP9Gs",
    ),
    (
        "ecdsa-sha2-nistp521",
        "AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAFf9A+Chs0uDhwKEp1CEUd+spYu"
        "hg1CLmWBz8Qa51kxodpD2dvOiMbDRNb9D0Munsovc4gmItKKSzoUnw/GRzn4fQC0AIUEPaWSlv762Cv5"
        "oRs+OgRS9fn+CkiL75ZuJtR+p5rF2TwPAIDNl9ExE0hGaivuvhVhdl0YbLYOtuSz/qWvVg==",
        "c ecdsab521",
        521,
        "SHA256:dY1dkgkoBmWSJ82SoOCRIZWBFm7Sqa1sRXH1jHPAOKs",
    ),
    (
        "ssh-rsa",
        "AAAAB3NzaC1yc2EAAAADAQABAAABAQCgTTAW9W2dTorABwSvzhBIHPKrTQoe71u2btqySbmhy1hyubDZ"
        "Q01Nyk7az2Ck+A8ciNHSlLMRcCVFfv932LfSLiGdF5ItvBh05NNJ80t0PbNVmmTCTg6L8zIlR1hM6prD"
        "cbHwMu842uQbfxNZ8rxf6KNQ90Mf7wfB1sV9/f0XxBU35RLeIlGlNmDRyaad3AEtFA69tRTqE+1Qju9X"
        "poLj/LZ9HxfSXhokBnW13OGuitnZaDYQPwdG5sGAG9QwBD58H0voWO495OAvax+xjxm30u4xdnh2gJML"
        "BVSOO/phlK4zxXwyadVR1mcD4VXPIw4/0nLoEXNalEd+MnzO51cr",
        "c rsab2048",
        2048,
        "SHA256:IkXVgGCChR9dMwwnFnoNydPgsc/97gecL01TWu1Yp0k",
    ),
]

ED25519_LINE = " ".join(VECTORS[0][:3])
ED25519_BODY = VECTORS[0][1]
ED25519_FP = VECTORS[0][4]
P256_BODY = VECTORS[1][1]
DSA_LINE = (
    "ssh-dss "
    "AAAAB3NzaC1kc3MAAACBANARbyztE7SuUWAZEjGdytOaLoDUCp/lD/1dTwOKwDFOsG7zf5QFD4/9H4+LW5Y73AAE"
    "iI/SbCUlYWN7ltO5tfzralKBD9QEFE9Ej181OO1kB+wx3Zjw1s6PbtVdy1s7QIvz4TpsmvYe6ifz5/HyJIclht6U"
    "5OEm/ehvbK5O9+FbAAAAFQC3Jid4Ig0Pkf03sxWD73Y1JzdEAQAAAIEAnfRQa8/hIr4+lTrZI+qJEtbzN9J+uQfk"
    "WvsSbgi9bkKajFYY0Dfjrs1SwNbaryexgV547O9pvXuNJk/Dk2a19h55PSw4aDkmAQEahy2WrimJSY5SovwpCgkU"
    "SMvZRCfo1ECSBWjpOBFePytlJEJZFMFVNZ1NvuwdcX2c6zqD5lkAAACAV5+pRlWyseK360IetM6zJsI27PSt7hC3"
    "42lYoykL90hzp6oGqTSOQslU++awhDk/O6P+LcePftUGjptZozwdmG6JEHqfFbst8js8swxhNfvf87aa9fwkHEZg"
    "PyhzZp4m2LOCZ1iMXz+PCmsXFmwDAoaU4B7uGqhBelE9S10KIQM="
    " c dsa"
)


def _openssh(public: object) -> str:
    return public.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def _keygen_fingerprint(line: str, tmp_path: Path) -> str:
    assert SSH_KEYGEN is not None
    path = tmp_path / "key.pub"
    path.write_text(line + "\n")
    out = subprocess.run(
        [SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[1]


def _private(key: object, fmt: serialization.PrivateFormat, password: bytes | None = None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, fmt, encryption
    ).decode()


def _refused(text: str) -> KeyRefused:
    result = parse_public_key(text)
    assert isinstance(result, KeyRefused), result
    return result


# --- accepted keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "key_type", "bits"),
    [
        (lambda: ed25519.Ed25519PrivateKey.generate(), "ssh-ed25519", 256),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ecdsa-sha2-nistp256", 256),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ecdsa-sha2-nistp384", 384),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "ecdsa-sha2-nistp521", 521),
        (lambda: rsa.generate_private_key(65537, 2048), "ssh-rsa", 2048),
        (lambda: rsa.generate_private_key(65537, 3072), "ssh-rsa", 3072),
        (lambda: rsa.generate_private_key(65537, 4096), "ssh-rsa", 4096),
    ],
    ids=["ed25519", "p256", "p384", "p521", "rsa2048", "rsa3072", "rsa4096"],
)
def test_each_accepted_type_with_its_bits_and_fingerprint(
    make: object, key_type: str, bits: int, tmp_path: Path
) -> None:
    line = _openssh(make().public_key())  # type: ignore[operator]
    result = parse_public_key(f"{line} alice@laptop\n")
    assert isinstance(result, PublicKey), result
    assert (result.key_type, result.bits, result.comment) == (key_type, bits, "alice@laptop")
    assert result.public_key == line
    blob = base64.b64decode(line.split()[1])
    assert result.fingerprint == fingerprint_of(blob)
    assert result.fingerprint.startswith("SHA256:") and "=" not in result.fingerprint
    assert len(result.fingerprint) == len("SHA256:") + 43
    if SSH_KEYGEN:
        assert result.fingerprint == _keygen_fingerprint(f"{line} alice@laptop", tmp_path)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v[0])
def test_fixed_vectors_as_ssh_keygen_printed_them(vector: tuple[str, str, str, int, str]) -> None:
    key_type, body, comment, bits, fingerprint = vector
    result = parse_public_key(f"{key_type} {body} {comment}")
    assert isinstance(result, PublicKey), result
    assert (result.key_type, result.bits, result.fingerprint) == (key_type, bits, fingerprint)
    assert result.public_key == f"{key_type} {body}"
    assert result.comment == comment


def test_fingerprint_of_nothing() -> None:
    # SHA-256 of nothing, as OpenSSH writes it: unpadded base64.
    assert fingerprint_of(b"") == "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"


@pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen (openssh-client) is not installed")
@pytest.mark.parametrize(
    ("kind", "bits"),
    [("ed25519", None), ("ecdsa", "256"), ("ecdsa", "384"), ("ecdsa", "521"), ("rsa", "2048")],
)
def test_keys_ssh_keygen_made(kind: str, bits: str | None, tmp_path: Path) -> None:
    assert SSH_KEYGEN is not None
    path = tmp_path / "id"
    args = [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "me@host", "-f", str(path)]
    subprocess.run(args + (["-b", bits] if bits else []), check=True)
    pub = (tmp_path / "id.pub").read_text()
    result = parse_public_key(pub)
    assert isinstance(result, PublicKey), result
    assert result.fingerprint == _keygen_fingerprint(pub.strip(), tmp_path)
    assert result.public_key == " ".join(pub.split()[:2])
    # The private key file next to it is refused as one.
    refused = _refused(path.read_text())
    assert refused.private and refused.message == PRIVATE_KEY_TEXT
    # So is one with a passphrase (cryptography writes those only with bcrypt installed).
    subprocess.run([SSH_KEYGEN, "-q", "-p", "-N", "pass phrase", "-f", str(path)], check=True)
    assert "PRIVATE KEY" in path.read_text()
    assert _refused(path.read_text()).private


def test_whitespace_around_and_inside_is_tolerated() -> None:
    for text in (
        f"\n\n  {ED25519_LINE}  \r\n\n",
        ED25519_LINE.replace(" ", "\t"),
        ED25519_LINE.replace(" ", "\u00a0"),  # a no-break space from a web page
        "\ufeff" + ED25519_LINE,  # a byte-order mark from a Windows editor
        ED25519_LINE.replace("AAAAIMri", "AAAA\u200bIMri"),  # a zero-width space
    ):
        result = parse_public_key(text)
        assert isinstance(result, PublicKey), (text, result)
        assert result.fingerprint == ED25519_FP


def test_no_comment_is_none() -> None:
    result = parse_public_key(" ".join(ED25519_LINE.split()[:2]))
    assert isinstance(result, PublicKey) and result.comment is None


# --- refused public keys ----------------------------------------------------------------


def test_rsa_under_2048_bits_is_refused_with_its_size() -> None:
    line = _openssh(rsa.generate_private_key(65537, 1024).public_key())
    refused = _refused(line)
    assert refused.problem is Problem.RSA_TOO_SHORT
    assert "1024 bits" in refused.message and "2048" in refused.message
    line = _openssh(rsa.generate_private_key(65537, 2040).public_key())
    assert _refused(line).problem is Problem.RSA_TOO_SHORT


def test_dsa_is_refused() -> None:
    refused = _refused(DSA_LINE)
    assert refused.problem is Problem.DSA and "DSA" in refused.message


@pytest.mark.parametrize(
    "key_type",
    [
        "ssh-ed25519-cert-v01@openssh.com",
        "ssh-rsa-cert-v01@openssh.com",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    ],
)
def test_certificates_are_refused_and_told_why(key_type: str) -> None:
    refused = _refused(f"{key_type} AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t me")
    assert refused.problem is Problem.CERTIFICATE
    assert "certificate" in refused.message


@pytest.mark.parametrize(
    "line",
    [
        # cryptography 49 loads this one, as a plain ed25519 key: the bot must not.
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIKrV1ej8L0gXhHJg"
        "c2d0eUmUQlqx9NWvdIGFWBZWX9TnAAAABHNzaDo= me",
        "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20= x",
    ],
)
def test_security_keys_are_refused_with_a_reason(line: str) -> None:
    refused = _refused(line)
    assert refused.problem is Problem.SECURITY_KEY
    assert "ssh-keygen -t ed25519" in refused.message


@pytest.mark.parametrize(
    "prefix",
    [
        'from="10.0.0.0/8" ',
        'command="echo hi",no-pty ',
        "no-port-forwarding,no-X11-forwarding ",
        "restrict ",
    ],
)
def test_authorized_keys_options_are_refused(prefix: str) -> None:
    refused = _refused(prefix + ED25519_LINE)
    assert refused.problem is Problem.OPTIONS
    assert "from=" in refused.message


def test_several_keys_in_one_paste_are_refused() -> None:
    other = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
    refused = _refused(f"{ED25519_LINE}\n{other} bob@desk\n")
    assert refused.problem is Problem.SEVERAL_KEYS and "2 keys" in refused.message


def test_a_key_broken_over_lines_is_refused() -> None:
    refused = _refused(ED25519_LINE[:40] + "\n" + ED25519_LINE[40:])
    assert refused.problem is Problem.MALFORMED and "line" in refused.message


def test_other_public_key_formats_get_a_conversion_hint() -> None:
    ssh2 = (
        '---- BEGIN SSH2 PUBLIC KEY ----\nComment: "rsa-key"\n'
        f"{ED25519_BODY}\n---- END SSH2 PUBLIC KEY ----\n"
    )
    assert _refused(ssh2).problem is Problem.OTHER_FORMAT
    assert "PuTTYgen" in _refused(ssh2).message
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    refused = _refused(pem)
    assert refused.problem is Problem.OTHER_FORMAT and "ssh-keygen -i" in refused.message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", Problem.EMPTY),
        ("  \n\t ", Problem.EMPTY),
        ("hello world", Problem.MALFORMED),
        ("ssh-ed25519", Problem.MALFORMED),
        ("ssh-ed25519 !!!!notbase64", Problem.MALFORMED),
        ("ssh-ed25519 AAAA", Problem.MALFORMED),
        (f"ssh-ed25519 {ED25519_BODY[:-4]}", Problem.MALFORMED),  # cut short
        (f"ssh-ed25519 {ED25519_BODY}AAAA", Problem.MALFORMED),  # trailing bytes
        (f"ssh-rsa {ED25519_BODY}", Problem.MALFORMED),  # type and blob disagree
        (f"ecdsa-sha2-nistp384 {P256_BODY}", Problem.MALFORMED),  # another curve
        (f"ssh-foo {ED25519_BODY}", Problem.UNKNOWN_TYPE),
        (f"ssh-ed25519 {ED25519_BODY.replace('A', 'Ａ', 1)}", Problem.MALFORMED),  # fullwidth
        ("\x00\x01\x02 binary", Problem.MALFORMED),
        (ED25519_BODY, Problem.MALFORMED),  # the type left out
    ],
)
def test_garbage_is_refused(text: str, problem: Problem) -> None:
    refused = _refused(text)
    assert refused.problem is problem
    assert refused.message


def test_not_a_string_is_refused() -> None:
    assert _refused(None).problem is Problem.MALFORMED  # type: ignore[arg-type]


def test_huge_input_is_refused_without_parsing() -> None:
    refused = _refused("A" * (MAX_INPUT_CHARS + 1))
    assert refused.problem is Problem.TOO_LONG
    refused = _refused(ED25519_LINE + " " + "x" * MAX_INPUT_CHARS)
    assert refused.problem is Problem.TOO_LONG
    # Just under the bound still parses (a long comment, cut to the column).
    line = ED25519_LINE + " " + "y" * (MAX_INPUT_CHARS - len(ED25519_LINE) - 1)
    result = parse_public_key(line)
    assert isinstance(result, PublicKey) and result.comment is not None
    assert result.comment.startswith("c ed25519 yyy") and len(result.comment) == MAX_COMMENT_CHARS


# --- comments ---------------------------------------------------------------------------


def test_unicode_comment_is_kept_and_controls_dropped() -> None:
    result = parse_public_key(f"{ED25519_LINE[:-10]} clé de José 🔑 <!channel>")
    assert isinstance(result, PublicKey)
    assert result.comment == "clé de José 🔑 <!channel>"  # kept as typed: escaped when shown
    assert sanitize_comment("evil\u202egnp.exe\x07 \x1b[31mred \u2028next") == (
        "evilgnp.exe [31mred next"
    )
    assert sanitize_comment("\u200b \t") is None
    assert sanitize_comment("e\u0301") == "é"  # NFC
    assert len(sanitize_comment("z" * 500) or "") == MAX_COMMENT_CHARS


def test_type_labels() -> None:
    assert type_label("ssh-ed25519") == "ED25519"
    assert type_label("ecdsa-sha2-nistp521") == "ECDSA P-521"
    assert type_label("ssh-rsa", 4096) == "RSA 4096"
    assert type_label("ssh-rsa") == "RSA"


# --- private keys -----------------------------------------------------------------------


def _private_forms() -> list[tuple[str, str]]:
    edkey = ed25519.Ed25519PrivateKey.generate()
    eckey = ec.generate_private_key(ec.SECP256R1())
    rsakey = rsa.generate_private_key(65537, 2048)
    fmt = serialization.PrivateFormat
    openssh = _private(edkey, fmt.OpenSSH)
    pkcs1 = _private(rsakey, fmt.TraditionalOpenSSL)
    pkcs8 = _private(eckey, fmt.PKCS8)

    def body(pem: str) -> str:
        return "\n".join(line for line in pem.splitlines() if not line.startswith("-----"))

    return [
        ("openssh", openssh),
        ("pkcs1 rsa", pkcs1),
        ("sec1 ec", _private(eckey, fmt.TraditionalOpenSSL)),
        ("pkcs8", pkcs8),
        ("pkcs8 encrypted", _private(rsakey, fmt.PKCS8, b"pw")),
        ("pkcs1 encrypted (Proc-Type)", _private(rsakey, fmt.TraditionalOpenSSL, b"pw")),
        ("openssh body without armour", body(openssh)),
        ("openssh body on one line", "".join(body(openssh).split())),
        ("openssh body, first line", body(openssh).splitlines()[0]),
        ("pkcs1 body without armour", body(pkcs1)),
        ("pkcs1 body, first line", body(pkcs1).splitlines()[0]),
        ("pkcs8 body on one line", "".join(body(pkcs8).split())),
        ("encrypted pkcs8 body", body(_private(rsakey, fmt.PKCS8, b"pw"))),
        ("armour words without dashes", "BEGIN OPENSSH PRIVATE KEY\n" + body(openssh)),
        ("dsa armour", "-----BEGIN DSA PRIVATE KEY-----\nMIIBuwIBAAKBgQ\n"),
        (
            "putty ppk",
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: me\n"
            "Public-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIMriwK0HGx4j9ovFQSo8r5jVbJL7mqNfwwNc\n"
            "S+7fwRZi\nPrivate-Lines: 1\nAAAAIGx1bXA=\nPrivate-MAC: 0123abcd\n",
        ),
        ("ppk body only", "Private-Lines: 1\nAAAAIGx1bXA=\n"),
        ("after a public key", f"{ED25519_LINE}\n{openssh}"),
        ("as the comment", f"{ED25519_LINE} {''.join(body(openssh).split())}"),
        ("larger than the input bound", openssh + "\n" + "#" * (MAX_INPUT_CHARS * 2)),
    ]


PRIVATE_FORMS = dict(_private_forms())


@pytest.mark.parametrize("name", list(PRIVATE_FORMS))
def test_private_keys_are_refused_as_such_and_not_echoed(name: str) -> None:
    text = PRIVATE_FORMS[name]
    assert looks_like_private_key(text), name
    refused = _refused(text)
    assert refused.problem is Problem.PRIVATE_KEY and refused.private
    assert refused.message == PRIVATE_KEY_TEXT
    shown = repr(refused) + refused.message
    for word in text.split():
        if len(word) >= 12 and not word.startswith(("-----", "PuTTY", "Private", "Proc-")):
            assert word not in shown


def test_public_keys_do_not_look_private() -> None:
    for make in (
        lambda: ed25519.Ed25519PrivateKey.generate(),
        lambda: ec.generate_private_key(ec.SECP521R1()),
        lambda: rsa.generate_private_key(65537, 4096),
    ):
        line = _openssh(make().public_key()) + " MacBookProOfJohn user@host"
        assert not looks_like_private_key(line)
        assert isinstance(parse_public_key(line), PublicKey)


def test_private_key_message_says_what_to_do() -> None:
    assert PRIVATE_KEY_TEXT == (
        "That is a PRIVATE key. It was not stored. Treat it as leaked: delete it and make a new "
        "key pair (ssh-keygen -t ed25519), then paste the .pub file's line."
    )
