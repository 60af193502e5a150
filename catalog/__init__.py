"""The template catalog: templates, loading YAML, the /templates filter, offer matching.

Imports nothing from `bot` or `storage` (docs/ARCHITECTURE.md "Packages and who may import
whom"; checked by lint-imports).
"""

from catalog.export import export_template
from catalog.filters import TemplateMatch, TemplateQuery, filter_templates, parse_query
from catalog.loader import BUILTIN_SLUGS, Catalog, CatalogError, load_catalog, validate_dir
from catalog.matching import (
    MAX_OFFERS,
    VRAM_TOLERANCE,
    OfferLike,
    RankedOffer,
    build_offer_query,
    cuda_tuple_from_float,
    disk_problem,
    min_gpu_ram_mb,
    offer_fits,
    rank_offers,
    similar_offers,
    vram_fits,
)
from catalog.models import MIN_DISK_GB, Template, parse_cuda_version

__all__ = [
    "BUILTIN_SLUGS",
    "MAX_OFFERS",
    "MIN_DISK_GB",
    "VRAM_TOLERANCE",
    "Catalog",
    "CatalogError",
    "OfferLike",
    "RankedOffer",
    "Template",
    "TemplateMatch",
    "TemplateQuery",
    "build_offer_query",
    "cuda_tuple_from_float",
    "disk_problem",
    "export_template",
    "filter_templates",
    "load_catalog",
    "min_gpu_ram_mb",
    "offer_fits",
    "parse_cuda_version",
    "parse_query",
    "rank_offers",
    "similar_offers",
    "validate_dir",
    "vram_fits",
]
