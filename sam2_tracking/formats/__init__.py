"""Annotation formats: pure converters (x_to_y) and separate readers/writers (load_*/write_*).

DIVE JSON v2 (dive), the DIVE mask zip (maskzip), COCO with track ids (coco), VIAME CSV (viame, export only) and
an overlay video (overlay, export only). Every converter works on sam2_tracking.annotation_set.AnnotationSet;
formats.parsing holds the readers' shared checks.
"""

from sam2_tracking.annotation_set import AnnotationSet, FormatError, TrackData
from sam2_tracking.formats.files import (
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    detect_format,
    load_annotations,
    write_annotations,
)

__all__ = [
    "EXPORT_FORMATS", "IMPORT_FORMATS", "AnnotationSet", "FormatError", "TrackData", "detect_format",
    "load_annotations", "write_annotations",
]
