"""Importers of other releases into the c2kd dataset format (captions.parquet + feature store)."""

from c2kd.data.importers.layouts import LAYOUTS, DatasetLayout, get_layout
from c2kd.data.importers.release import ImportReport, ReleaseImporter, SplitReport, import_release
from c2kd.data.importers.safe_pickle import RestrictedUnpickler, UnsafePickleError, load_pickle
from c2kd.data.importers.split_list import SplitListing, read_split_listing

__all__ = [
    "LAYOUTS",
    "DatasetLayout",
    "ImportReport",
    "ReleaseImporter",
    "RestrictedUnpickler",
    "SplitListing",
    "SplitReport",
    "UnsafePickleError",
    "get_layout",
    "import_release",
    "load_pickle",
    "read_split_listing",
]
