"""Build a test model: the real SAM2.1 Tiny architecture with seeded random weights.

The official checkpoints cannot be downloaded on our build machines, so tests, benchmarks and outside checks use this
model instead. It runs the real code paths (config parsing, checkpoint loading with weights_only=True, the real
SAM2VideoPredictor); its masks are meaningless but deterministic.

    python -m sam2_tracking.models.testmodel OUT_DIR [--image-size 256] [--seed 0]

writes OUT_DIR/config.yaml (a self-contained model config) and OUT_DIR/checkpoint.pt ({"model": state_dict}).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

BASE_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
CONFIG_NAME = "config.yaml"
CHECKPOINT_NAME = "checkpoint.pt"


def build_test_model(out_dir: str | os.PathLike, image_size: int = 256, seed: int = 0) -> tuple[Path, Path]:
    """Write config.yaml and checkpoint.pt to out_dir; return their paths. Same arguments give the same files."""
    import sam2  # noqa: F401  (initialises hydra's config search path to the sam2 package)
    import torch
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    if image_size % 16 != 0 or image_size < 64:
        raise ValueError(f"image size must be a multiple of 16 and at least 64, got {image_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose(config_name=BASE_CONFIG, overrides=[f"++model.image_size={image_size}"])
    OmegaConf.resolve(cfg)
    torch.manual_seed(seed)
    model = instantiate(cfg.model, _recursive_=True)
    # Plain random init leaves the output heads near zero; widen the weights a little so masks vary with the image.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.add_(torch.randn(param.shape, generator=generator) * 0.02)
    config_path = out / CONFIG_NAME
    checkpoint_path = out / CHECKPOINT_NAME
    # Write to temporary names first so a concurrent reader never sees half a file.
    tmp_config = out / (CONFIG_NAME + ".tmp")
    tmp_checkpoint = out / (CHECKPOINT_NAME + ".tmp")
    tmp_config.write_text(
        f"# SAM2.1 Tiny architecture, image size {image_size}, random weights (seed {seed}): a test model.\n"
        + OmegaConf.to_yaml(cfg)
    )
    torch.save({"model": model.state_dict()}, tmp_checkpoint)
    os.replace(tmp_config, config_path)
    os.replace(tmp_checkpoint, checkpoint_path)
    return config_path, checkpoint_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_tracking.models.testmodel", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder to write config.yaml and checkpoint.pt into")
    parser.add_argument("--image-size", type=int, default=256, help="model input size in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the weights (default 0)")
    args = parser.parse_args(argv)
    config_path, checkpoint_path = build_test_model(args.out_dir, args.image_size, args.seed)
    print(f"wrote {config_path} and {checkpoint_path} ({checkpoint_path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
