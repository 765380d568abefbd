"""The store on both backends: datasets, edits and revisions, workers, settings and models, imports.
Job batches, keyframe rules for jobs and undo are in test_store_jobs.py."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from sam2_tracking.annotation_set import AnnotationSet, Feature, TrackData
from sam2_tracking.states import ModelState, SourceKind
from sam2_tracking.store import (
    SCHEMA_VERSION,
    CreateTrack,
    DeleteFeature,
    DeleteTrack,
    EditError,
    NotFound,
    RevisionConflict,
    UpdateTrack,
    UpsertKeyframe,
    open_store,
)
from sam2_tracking.testing.db_snapshot import snapshot
from sam2_tracking.types import Box, Click, JobSpec
from tests.store_data import H, W, disc


@pytest.fixture()
def dataset(store):
    return store.add_dataset("clip", "/videos/clip.mp4", "video", 50, 30.0, W, H)


def test_open_creates_schema_wal_and_foreign_keys(tmp_path):
    path = tmp_path / "sub" / "s.db"
    store = open_store(path)
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    again = open_store(path)  # migrating an up-to-date file is a no-op
    assert again.list_datasets() == []
    with again._write() as conn:  # the writer connection enforces foreign keys
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    again.close()


def test_datasets(store, dataset):
    assert store.get_dataset(dataset.dataset_id) == dataset
    assert store.list_datasets() == [dataset]
    assert store.find_dataset_by_path("/videos/clip.mp4") == dataset
    assert store.find_dataset_by_path("/nope.mp4") is None
    with pytest.raises(NotFound, match="dataset 999 does not exist"):
        store.get_dataset(999)
    with pytest.raises(KeyError):
        store.get_dataset(999)
    with pytest.raises(ValueError, match="kind"):
        store.add_dataset("x", "/x", "film", 1, 1, 1, 1)


def test_save_edits_creates_tracks_and_keyframes(store, dataset):
    ds = dataset.dataset_id
    saved = store.save_edits(ds, 0, [
        CreateTrack("fish", 0.9, {"species": "cod"}, placeholder_id=-1),
        UpsertKeyframe(-1, 4, box=Box(1, 2, 10, 12), clicks=(Click(5, 6),), attributes={"occluded": False}),
        CreateTrack("crab", placeholder_id=-2),
        UpsertKeyframe(-2, 7, mask=disc(30, 30)),
    ])
    assert saved == 1 and store.get_revision(ds) == 1
    fish, crab = saved.track_ids[-1], saved.track_ids[-2]
    tracks = store.list_tracks(ds)
    assert [(t.track_id, t.label, t.begin, t.end) for t in tracks] == [(fish, "fish", 4, 4), (crab, "crab", 7, 7)]
    assert tracks[0].confidence_pairs == (("fish", 0.9),) and tracks[0].attributes == {"species": "cod"}
    [feature] = store.get_features(fish)
    assert feature.keyframe and feature.job_id is None and feature.box == Box(1, 2, 10, 12)
    assert feature.clicks == (Click(5, 6),) and feature.attributes == {"occluded": False}
    [crab_feature] = store.get_frame_features(ds, 7)
    assert np.array_equal(crab_feature.mask, disc(30, 30))
    assert crab_feature.box == Box(24, 24, 37, 37)  # derived from the mask for box-only views
    seeds = {s.frame_idx: s for t in (fish, crab) for s in store.keyframe_seeds(t)}
    assert seeds[4].box == Box(1, 2, 10, 12) and seeds[4].clicks == (Click(5, 6),)
    assert seeds[7].mask is not None and seeds[7].box is None

    saved = store.save_edits(ds, 1, [UpdateTrack(fish, label="cod", attributes={"n": 1}), DeleteFeature(crab, 7)])
    assert saved == 2
    assert store.get_track(fish).label == "cod" and store.get_track(fish).attributes == {"n": 1}
    assert store.get_features(crab) == [] and store.get_track(crab).begin is None
    store.save_edits(ds, 2, [DeleteTrack(crab)])
    with pytest.raises(NotFound):
        store.get_track(crab)


def test_stale_revision_is_refused_and_changes_nothing(store, dataset, tmp_path):
    ds = dataset.dataset_id
    track = store.create_track(ds, "fish")
    store.save_edits(ds, 0, [UpsertKeyframe(track.track_id, 1, box=Box(1, 1, 5, 5))])  # person A saves
    before = snapshot(store)
    with pytest.raises(RevisionConflict) as info:  # person B loaded revision 0
        store.save_edits(ds, 0, [UpsertKeyframe(track.track_id, 1, box=Box(2, 2, 9, 9))])
    assert "revision 0, now 1" in str(info.value) and "reload" in str(info.value)
    assert snapshot(store) == before
    assert store.get_features(track.track_id)[0].box == Box(1, 1, 5, 5)


def test_invalid_edit_rolls_back_the_whole_save(store, dataset, tmp_path):
    ds = dataset.dataset_id
    track = store.create_track(ds)
    other = store.add_dataset("other", "/o.mp4", "video", 5, 30, W, H)
    foreign = store.create_track(other.dataset_id)
    before = snapshot(store)
    bad_saves = [
        ([UpsertKeyframe(track.track_id, 0, box=Box(1, 1, 4, 4)), UpsertKeyframe(track.track_id, 50, box=Box(1, 1, 4, 4))],
         "edit 2 .*frame 50"),
        ([UpsertKeyframe(track.track_id, 0, mask=np.ones((10, 10), bool))], "video is 64x48"),
        ([UpsertKeyframe(track.track_id, 0, mask=np.zeros((H, W), bool))], "mask is empty"),
        ([UpsertKeyframe(track.track_id, 0)], "needs a box, a mask or clicks"),
        ([UpsertKeyframe(foreign.track_id, 0, box=Box(1, 1, 4, 4))], "belongs to dataset"),
        ([DeleteFeature(track.track_id, 3)], "no feature to delete"),
        ([CreateTrack(""), ], "label"),
        ([UpdateTrack(9999, label="x")], "track 9999 does not exist"),
    ]
    for edits, message in bad_saves:
        with pytest.raises(EditError, match=message):
            store.save_edits(ds, 0, edits)
    assert snapshot(store) == before


def test_workers_settings_models(store):
    store.record_heartbeat("host:1", "gpu", "host", 1, "cuda:0", None)
    store.record_heartbeat("host:2", "cpu", "host", 2, "cpu", 7)
    assert [w.worker_id for w in store.list_workers()] == ["host:2", "host:1"]
    assert [w.current_job_id for w in store.list_workers(queue="cpu")] == [7]
    assert store.list_workers(max_age_s=-1) == []
    store.remove_worker("host:1")
    assert [w.worker_id for w in store.list_workers()] == ["host:2"]
    assert store.list_workers()[0].models is None  # not reported
    store.record_heartbeat("host:2", "cpu", "host", 2, "cpu", None, models=["sam2.1_hiera_tiny", "custom-a"])
    assert store.list_workers()[0].models == ("custom-a", "sam2.1_hiera_tiny")
    store.record_heartbeat("host:2", "cpu", "host", 2, "cpu", None, models=[])
    assert store.list_workers()[0].models == ()

    assert store.get_setting("sam2_enabled", False) is False
    store.set_setting("sam2_enabled", True)
    store.set_setting("queues", {"cpu": 1})
    assert store.get_setting("sam2_enabled") is True and store.get_setting("queues") == {"cpu": 1}

    store.upsert_model("tiny", "configs/t.yaml", "http://x/t.pt", True, "absent")
    entry = store.update_model("tiny", status="downloading", progress_bytes=10, total_bytes=100)
    assert (entry.status, entry.progress_bytes, entry.is_default) == (ModelState.DOWNLOADING, 10, True)
    assert (entry.source, entry.cancel_requests) == (SourceKind.URL, 0)
    # Each cancel request is counted on the row (a running download stops when the count changes); re-listing the
    # model keeps the count.
    assert store.request_model_cancel("tiny").cancel_requests == 1
    store.upsert_model("tiny", "configs/t.yaml", "http://x/t.pt", True, "downloading")
    assert store.get_model("tiny").cancel_requests == 1
    uploaded = store.upsert_model("up", "", "", False, "ready", source=SourceKind.UPLOAD)
    assert (uploaded.source, uploaded.checkpoint_url, uploaded.usable) == (SourceKind.UPLOAD, "", True)
    store.delete_model("up")
    store.upsert_model("custom", "c.yaml", "http://x/c.pt", False, "ready", size=5, sha256="ab")
    assert [m.name for m in store.list_models()] == ["custom", "tiny"]
    store.delete_model("custom")
    with pytest.raises(NotFound):
        store.get_model("custom")
    with pytest.raises(ValueError, match="status"):
        store.upsert_model("x", "c", "u", False, "weird")


def test_staging_rows_of_an_import_that_died_are_removed_later(store, dataset, monkeypatch):
    """An import whose process died between its staging transactions leaves a hidden dataset with tracks and
    features; the next start removes it once it is a day old, and nothing else (a running import's is young)."""
    from sam2_tracking.store import import_export

    keep = store.create_track(dataset.dataset_id, "kept").track_id
    store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id),
                     [UpsertKeyframe(keep, 0, box=Box(1, 1, 9, 9))])
    tracks = [TrackData(1, (("fish", 1.0),), tuple(Feature(1, f, box=Box(2, 2, 20, 20)) for f in range(9)), {})]
    incoming = AnnotationSet(tuple(tracks), W, H, 50, 30.0, "clip")
    monkeypatch.setattr(import_export, "IMPORT_CHUNK_ROWS", 4)
    monkeypatch.setattr(type(store), "_drop_staging_dataset", lambda self, staging_id: None)  # the process "dies"
    monkeypatch.setattr(import_export, "_check_revision", lambda *a: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        store.import_annotations(dataset.dataset_id, incoming)
    monkeypatch.undo()
    before = snapshot(store)
    with store._read() as conn:
        assert conn.execute("SELECT count(*) FROM datasets WHERE staging = 1").fetchone()[0] == 1
    assert store.drop_abandoned_imports() == 0 and snapshot(store) == before  # a day has not passed
    with store._write() as conn:
        conn.execute("UPDATE datasets SET created_at = created_at - 2 * 86400 WHERE staging = 1")
    assert store.drop_abandoned_imports() == 1
    with store._read() as conn:
        assert conn.execute("SELECT count(*) FROM datasets WHERE staging = 1").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM tracks WHERE dataset_id <> :id",
                            {"id": dataset.dataset_id}).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM features WHERE track_id <> :id", {"id": keep}).fetchone()[0] == 0
    assert [t.track_id for t in store.list_tracks(dataset.dataset_id)] == [keep]
    assert [d.dataset_id for d in store.list_datasets()] == [dataset.dataset_id]


@pytest.mark.parametrize("chunk_rows", [5000, 7])
def test_import_replace_in_bounded_transactions(store, dataset, tmp_path, monkeypatch, chunk_rows):
    """A large import (forced here with a chunk of 7 rows) is staged in many short transactions and swapped in at
    once; a small one is one transaction. Either way the result is the same, staging leaves nothing behind, and
    the replace is refused (store unchanged) while a job on the dataset is queued."""
    from sam2_tracking.store import import_export

    monkeypatch.setattr(import_export, "IMPORT_CHUNK_ROWS", chunk_rows)
    old = store.create_track(dataset.dataset_id, "old").track_id
    store.save_edits(dataset.dataset_id, store.get_revision(dataset.dataset_id),
                     [UpsertKeyframe(old, f, box=Box(1, 1, 9, 9)) for f in range(12)])
    tracks = [TrackData(100 + i, (("fish", 1.0),), tuple(Feature(100 + i, f, box=Box(2, 2, 20 + i, 20))
                                                         for f in range(10)), {}) for i in range(3)]
    incoming = AnnotationSet(tuple(tracks), W, H, 50, 30.0, "clip")
    job = store.create_job(JobSpec(dataset.dataset_id, (old,), 0, "tiny", "cpu"), 5)
    before = snapshot(store)
    with pytest.raises(EditError, match="working on this video"):
        store.import_annotations(dataset.dataset_id, incoming, replace_existing=True)
    assert snapshot(store) == before
    store.cancel_if_queued(job.job_id)
    writes = []
    original = type(store)._write

    def counting(self):
        writes.append(1)
        return original(self)

    monkeypatch.setattr(type(store), "_write", counting)
    mapping = store.import_annotations(dataset.dataset_id, incoming, replace_existing=True)
    monkeypatch.undo()
    assert (len(writes) > 5) == (chunk_rows == 7)
    assert sorted(mapping) == [100, 101, 102]
    exported = store.export_annotations(dataset.dataset_id)
    assert [t.track_id for t in exported.tracks] == sorted(mapping.values())
    assert [[(f.frame_idx, f.box) for f in t.features] for t in exported.tracks] == \
        [[(f.frame_idx, f.box) for f in t.features] for t in tracks]
    assert [d.dataset_id for d in store.list_datasets()] == [dataset.dataset_id]
    with store._read() as conn:
        assert conn.execute("SELECT count(*) FROM datasets WHERE staging = 1").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM tracks WHERE track_id = :id", {"id": old}).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM features WHERE track_id = :id", {"id": old}).fetchone()[0] == 0
    assert old not in mapping.values(), "a replaced track's id is never given to a new one"
