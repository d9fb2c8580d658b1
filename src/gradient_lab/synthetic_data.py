"""A synthetic classification set: interleaved spirals in the plane, one arm per class.

`generate()` writes the arrays to `data/synthetic.npz` and a picture of them to
`data/synthetic_data_sample.png`; `load()` reads the arrays back, generating them first when
they are missing. Both are plain functions so other tools (a data pipeline, a test) can call
them. Rendering is headless (matplotlib's Agg backend): nothing ever opens a window.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure  # a Figure needs no pyplot and no GUI backend

from gradient_lab.files import atomic_write
from gradient_lab.layout import DATA_DIR

DATA_FILE = "synthetic.npz"
SAMPLE_IMAGE = "synthetic_data_sample.png"


@dataclass(frozen=True)
class DataSet:
    features: npt.NDArray[np.float32]  # (n, 2)
    labels: npt.NDArray[np.int64]  # (n,)
    path: Path

    @property
    def n_classes(self) -> int:
        return int(self.labels.max()) + 1


def make_spirals(
    n_samples: int = 2048, n_classes: int = 3, noise: float = 0.15, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Points on `n_classes` interleaved spiral arms with Gaussian noise, shuffled."""
    if n_samples < n_classes or n_classes < 2:
        raise ValueError("need at least two classes and one sample per class")
    rng = np.random.default_rng(seed)
    labels = np.arange(n_samples) % n_classes
    radius = rng.uniform(0.1, 1.0, n_samples)
    angle = labels * (2 * np.pi / n_classes) + radius * 3 * np.pi
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    points += rng.normal(0.0, noise * radius[:, None] + 0.01, points.shape)
    order = rng.permutation(n_samples)
    return points[order].astype(np.float32), labels[order].astype(np.int64)


def save_sample_image(
    features: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], path: Path
) -> Path:
    """A scatter plot of the set, coloured by class, written without any GUI backend."""
    fig = Figure(figsize=(4, 4), dpi=100)
    ax = fig.subplots()
    ax.scatter(features[:, 0], features[:, 1], c=labels, s=4, cmap="viridis")
    ax.set_title(f"synthetic spirals: {len(labels)} points, {int(labels.max()) + 1} classes")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def generate(
    out_dir: Path = DATA_DIR,
    n_samples: int = 2048,
    n_classes: int = 3,
    noise: float = 0.15,
    seed: int = 0,
) -> DataSet:
    """Write the data set and its sample picture into `out_dir`; return the set."""
    out_dir.mkdir(parents=True, exist_ok=True)
    features, labels = make_spirals(n_samples, n_classes, noise, seed)
    # Written to temporary names first: an interrupted run never leaves a half-written set, and
    # processes generating at once (the ranks of a distributed job) never collide.
    path = atomic_write(
        out_dir / DATA_FILE, lambda partial: _save_arrays(partial, features, labels)
    )
    atomic_write(
        out_dir / SAMPLE_IMAGE, lambda partial: save_sample_image(features, labels, partial)
    )
    return DataSet(features, labels, path)


def _save_arrays(
    path: Path, features: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
) -> None:
    """`np.savez`'s layout, written so that the bytes depend only on the arrays: `np.savez`
    leaves the zip headers to the running Python's zipfile, whose output changed between patch
    releases (3.11.2 and 3.11.7 write different headers) and with the OS that writes them, and
    DVC records the bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in (("features", features), ("labels", labels)):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o600 << 16
            # The "made by" host: zipfile writes 0 (MS-DOS) on Windows, 3 (Unix) elsewhere.
            entry.create_system = 3
            archive.writestr(entry, buffer.getvalue())


def load(data_dir: Path = DATA_DIR) -> DataSet:
    """The data set in `data_dir`, generated with the defaults when it is not there yet."""
    path = data_dir / DATA_FILE
    if not path.is_file():
        return generate(data_dir)
    with np.load(path) as arrays:
        return DataSet(arrays["features"], arrays["labels"], path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        data = generate(args.out_dir, args.samples, args.classes, args.noise, args.seed)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {data.path} and {data.path.parent / SAMPLE_IMAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
