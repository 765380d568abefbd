"""Runs inside .cache/venv-datumaro: reads our COCO file with datumaro's `coco_instances` importer.

    python datumaro_reader.py IN.json OUT.npz

OUT holds, per annotation datumaro made, the mask it decoded (key "<image file_name>|<track_id>") and a JSON
summary under "summary" (item ids, labels, attributes), so the test compares masks and track ids with ours.
"""

import json
import sys

import numpy as np
from datumaro.components.annotation import AnnotationType
from datumaro.components.dataset import Dataset


def main(source: str, out: str) -> None:
    dataset = Dataset.import_from(source, "coco_instances")
    labels = dataset.categories()[AnnotationType.label]
    arrays, summary = {}, []
    for item in dataset:
        for ann in item.annotations:
            if ann.type not in (AnnotationType.mask, AnnotationType.polygon):
                continue
            track_id = ann.attributes.get("track_id")
            summary.append({"item": item.id, "type": ann.type.name, "label": labels[ann.label].name,
                            "attributes": {k: v for k, v in ann.attributes.items()}, "group": ann.group})
            if ann.type == AnnotationType.mask:
                arrays[f"{item.id}|{track_id}"] = np.asarray(ann.image, dtype=bool)
    arrays["summary"] = np.frombuffer(json.dumps(summary, default=str).encode(), dtype=np.uint8)
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
