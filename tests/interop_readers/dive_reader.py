"""Runs inside .cache/venv-dive (DIVE-DSA's server package, pydantic 1): reads our files with DIVE's own code.

    python dive_reader.py COMMAND IN OUT [ARG]

Commands (each writes JSON to OUT, or CSV for viame-export; DIVE's exceptions propagate: the caller sees them):
  migrate IN.json             dive_utils.serializers.dive.migrate (pydantic models Track/Group/Feature)
  attributes IN.json          viame.load_json_as_track_and_attributes on the migrated file (DIVE's attribute scan)
  viame-load IN.csv           viame.load_csv_as_tracks_and_attributes
  viame-export IN.json FPS    viame.export_tracks_as_csv of the migrated file ('' FPS: none)
  kwcoco IN.json              kwcoco.load_coco_as_tracks_and_attributes ({"error": ...} when DIVE refuses it)
  maskzip IN.zip              TrackJSON.json through migrate, and each PNG as DIVE-DSA re-encodes it
                              (crud_annotation.py: np.array(Image.open(png).convert('1')) -> pycocotools RLE)
"""

import io
import json
import sys
import zipfile

import numpy as np
from dive_utils.serializers import dive, kwcoco, viame
from PIL import Image
from pycocotools import mask as mask_utils


def main(command: str, source: str, out: str, arg: str = "") -> None:
    if command == "migrate":
        result = dive.migrate(json.load(open(source)))
    elif command == "attributes":
        _data, result = viame.load_json_as_track_and_attributes(dive.migrate(json.load(open(source))))
    elif command == "viame-load":
        result, _attributes = viame.load_csv_as_tracks_and_attributes(open(source).read().splitlines())
    elif command == "viame-export":
        tracks = dive.migrate(json.load(open(source)))["tracks"].values()
        text = "".join(viame.export_tracks_as_csv(tracks, fps=float(arg) if arg else None))
        open(out, "w").write(text)
        return
    elif command == "kwcoco":
        try:
            result, _attributes = kwcoco.load_coco_as_tracks_and_attributes(json.load(open(source)))
        except ValueError as exc:
            result = {"error": str(exc)}
    elif command == "maskzip":
        with zipfile.ZipFile(source) as archive:
            track_json = dive.migrate(json.loads(archive.read("masks/TrackJSON.json")))
            rle_json = json.loads(archive.read("masks/RLE_MASKS.json"))
            pngs = {}
            for name in archive.namelist():
                if name.endswith(".png"):
                    image = Image.open(io.BytesIO(archive.read(name)))
                    bits = np.array(image.convert("1"))
                    rle = mask_utils.encode(np.asfortranarray(bits.astype(np.uint8)))
                    pngs[name] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("utf-8")}
        result = {"track_json": track_json, "rle_masks": rle_json, "pngs": pngs}
    else:
        raise SystemExit(f"unknown command {command}")
    with open(out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
