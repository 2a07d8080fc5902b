"""Sharing a store (issue 23, point 6): a folder ready for a Hugging Face dataset repository — the
store's files and a ``README.md`` dataset card — and its upload with ``huggingface_hub``.

The card says what a user needs before downloading gigabytes: the source dataset and its
fingerprint, the teachers (as descriptions: a store's teachers are never loaded from it), the
policy, N, k, sizes, and the sample-key scheme by which the store matches the user's own copy of
the data (:mod:`drkit.reinforcement.matching`), and how to open it against that copy. Its YAML front
matter is the Hub's metadata (tags, task, size category; the viewer off: shards are ``.npy``
records, not images) plus a ``drkit`` block with the same facts for programs.

The store is verified (every checksum) before anything is copied, so a damaged store is never
published. Only :func:`push_folder` touches the network, and only when asked.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError, StoreError
from .store import MANIFEST, Store

__all__ = ["export_store", "dataset_card", "push_folder", "CARD"]

log = logging.getLogger(__name__)

CARD = "README.md"
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


def _size_category(n: int) -> str:
    return next((name for bound, name in _SIZES if n < bound), "n>100M")


def _teachers(store: Store) -> list[str]:
    return [str(m.get("spec", m.get("class", "?"))) for m in store.settings["teacher"]["members"]]


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def _front_matter(store: Store, repo_id: str | None) -> dict[str, Any]:
    st, d = store.settings, store.settings["dataset"]
    return {
        "pretty_name": f"{d['name']} reinforced ({st['policy']['name']}, {store.num_augs} augmentations, "
                       f"top-{store.topk})",
        "tags": ["drkit", "dataset-reinforcement", "knowledge-distillation", "image-classification"],
        "task_categories": ["image-classification"],
        "size_categories": [_size_category(store.num_samples)],
        "viewer": False,  # the shards are augmentation records, not images
        "drkit": {
            "format": "drkit-store",
            "schema_version": store.manifest["schema_version"],
            "drkit_version": store.manifest["drkit_version"],
            "exported_by": __version__,
            **({"repo_id": repo_id} if repo_id else {}),
            "source_dataset": d,
            "teachers": _teachers(store),
            "temperature": st["teacher"]["temperature"],
            "policy": st["policy"]["name"],
            "num_samples": store.num_samples,
            "num_augs": store.num_augs,
            "topk": store.topk,
            "num_classes": store.num_classes,
            "seed": store.seed,
            "shards": len(store.shards),
            "bytes": store.nbytes(),
            "bytes_per_record": round(store.bytes_per_record(), 3),
            "sample_keys": st.get("sample_keys") if store.has_sample_keys else None,
        },
    }


def dataset_card(store: Store, *, repo_id: str | None = None) -> str:
    """The ``README.md`` of an exported store: YAML front matter (each value written as JSON, which
    YAML reads as is) and a body that says what the store is and how to use it."""
    meta = _front_matter(store, repo_id)
    info = meta["drkit"]
    d = info["source_dataset"]
    name = repo_id or "ORG/NAME"
    keys = info["sample_keys"]
    key_line = (f"`{keys['scheme']}` (content hash: {keys['hash']})" if keys else
                "none (schema {}): the store replays only on the exact dataset it was made from, in its order"
                .format(info["schema_version"]))
    front = "\n".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in meta.items())
    rows = [
        ("source dataset", f"`{d['name']}`: {d['length']:,} samples, {d['num_classes']} classes, first image "
                           f"{d['image_shape']}"),
        ("fingerprint", f"labels sha256 `{d['labels_sha256'][:16]}…`, content sha256 `{d['content_sha256'][:16]}…` "
                        f"({d['content_items']} images)"),
        ("teachers", ", ".join(f"`{t}`" for t in info["teachers"]) + f" (temperature {info['temperature']})"),
        ("policy", f"`{info['policy']}`"),
        ("records", f"{info['num_samples']:,} samples × {info['num_augs']} augmentations, top-{info['topk']} of "
                    f"{info['num_classes']} classes, seed {info['seed']}"),
        ("size", f"{_human(info['bytes'])} in {info['shards']} shards ({info['bytes_per_record']} bytes per "
                 "stored augmentation)"),
        ("sample keys", key_line),
        ("format", f"drkit store, schema {info['schema_version']} (made by drkit {info['drkit_version']})"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"""---
{front}
---

# {meta['pretty_name']}

A **reinforced dataset** made with drkit (dataset reinforcement, Faghri et al., ICCV 2023): for every sample of the source dataset, {info['num_augs']} augmentations were drawn and a
teacher ensemble was run once on each; this repository stores the augmentation *parameters* and the
teacher's top-{info['topk']} probabilities — not images. Train any student on it with the images of
your own copy of the source dataset, at the cost of ordinary training.

| | |
|---|---|
{table}

## Use it with your own copy of the data

The images are not here: download the store, then open it against your copy of
`{d['name']}`. When your copy is the same dataset in the same order, its fingerprint matches and
the store replays by position. Otherwise {"each sample is matched by its key (" + keys['scheme'] + ") and content hash: files listed in another order replay exactly; missing or changed samples are reported by count and example keys (`drkit verify store --data DATA`), and `ReinforcedDataset(DATA, store, only_matching=True)` trains on the rest." if keys else "the store cannot be used (it has no sample keys)."}

```bash
pip install drkit huggingface_hub
hf download {name} --repo-type dataset --local-dir store
drkit verify store --data DATA          # DATA: e.g. imagefolder:/path/to/your/copy
drkit train DATA --mode dr --store store --out run
```

```python
from huggingface_hub import snapshot_download
from drkit import ReinforcedDataset

store = snapshot_download("{name}", repo_type="dataset", local_dir="store")
train_set = ReinforcedDataset("imagefolder:/path/to/your/copy", store)  # only_matching=True to skip missing samples
view, target, label = train_set[0]
```

A store is data, not code: opening it runs nothing (`.npy` arrays read without pickle, a JSON
manifest checked against its schema and checksums); the teachers above are descriptions, never
loaded from the store.
"""


def export_store(store: str | os.PathLike[str] | Store, out: str | os.PathLike[str], *,
                 repo_id: str | None = None) -> Path:
    """Copy a complete store into ``out`` (new or empty) with a dataset card (:func:`dataset_card`):
    a folder ready for ``huggingface_hub.upload_folder`` (:func:`push_folder`). The store is
    verified first (every checksum and record), so a damaged store is never exported."""
    st = store if isinstance(store, Store) else Store.open(store)
    st.verify()
    dest = Path(out)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise StoreError(f"--out {dest} exists and is not an empty directory; choose a new one")
    if dest.resolve() == st.root.resolve() or st.root.resolve() in dest.resolve().parents:
        raise StoreError(f"--out {dest} lies inside the store {st.root}; choose a folder outside it")
    dest.mkdir(parents=True, exist_ok=True)
    files = [MANIFEST] + [f for s in st.shards for f in (s.file, s.keys_file) if f]
    for f in files:
        shutil.copyfile(st.root / f, dest / f)
    (dest / CARD).write_text(dataset_card(st, repo_id=repo_id), encoding="utf-8")
    log.info("exported %s to %s (%d files and %s)", st.root, dest, len(files), CARD)
    return dest


def push_folder(folder: str | os.PathLike[str], repo_id: str, *, private: bool = False,
                token: str | None = None) -> str:
    """Upload an exported folder to the Hugging Face dataset repository ``repo_id`` (created if
    needed) with ``huggingface_hub``; returns the commit URL. Needs the network and a token
    (``hf auth login`` or ``$HF_TOKEN``)."""
    folder = Path(folder)
    if not (folder / CARD).is_file() or not (folder / MANIFEST).is_file():
        raise StoreError(f"{folder} is not an exported store (no {CARD} and {MANIFEST}); run `drkit export` first")
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"--repo-id {repo_id!r} must be ORG/NAME (or USER/NAME)")
    try:
        import huggingface_hub  # the optional extra drkit[sources]: only pushing needs it
        from huggingface_hub import constants as hub_constants
    except ImportError as e:
        raise ConfigError("pushing needs huggingface_hub: pip install 'drkit[sources]' (or huggingface_hub)") from e
    if hub_constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ConfigError("HF_HUB_OFFLINE is set: cannot push; unset it on a machine with network access, or "
                          f"upload {folder} yourself")
    token = token or huggingface_hub.get_token()
    if not token:
        raise ConfigError("no Hugging Face token: run `hf auth login` or set $HF_TOKEN, then push again")
    api = huggingface_hub.HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                                 commit_message=f"drkit export of {folder.name}")
    except Exception as e:  # network, authentication and Hub errors: one clear message
        raise StoreError(f"pushing {folder} to {repo_id} failed: {type(e).__name__}: {e}; check the network, "
                         "the token's write access and the repo id") from e
    return str(getattr(info, "commit_url", info))
