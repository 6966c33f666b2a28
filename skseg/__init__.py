"""skseg: pyannote's speaker segmentation model as scikit-learn estimators.

What a user needs is importable from here; ``docs/api.rst`` lists the same names
in the same groups (``tests/test_api.py`` keeps the two in step). The modules
behind them are documented in the API reference; those it marks *internal* are
implementation, not API.
"""

from .audio import AudioReader, validate_file
from .batch import BatchResult, FileFailure, predict_many
from .binarize import Binarize
from .checkpoint import load_checkpoint
from .datasets import fetch_ami_excerpts, fetch_sample
from .exceptions import (
    AudioError,
    CheckpointError,
    FileError,
    LabelStudioError,
    SksegError,
    UnsafeCheckpointError,
    WeightsUnavailableError,
)
from .inference import ChunkScores, Inference, aggregate
from .io import load_folder, read_rttm, read_uem, write_rttm, write_uem
from .model import SegmentationModel, load_model
from .pipelines import (
    DiarizationEstimator,
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
)
from .serialization import save_model
from .streaming import StreamError
from .training import SegmentationTrainer, TrainingError
from .tuning import tune

__version__ = "0.1.0.dev0"

__all__ = [
    # estimators
    "VADEstimator",
    "OSDEstimator",
    "SegmentationEstimator",
    "ResegmentationEstimator",
    "DiarizationEstimator",
    # many files: batch prediction and tuning
    "predict_many",
    "BatchResult",
    "FileFailure",
    "tune",
    # networks: loading, fine-tuning, saving
    "SegmentationModel",
    "load_model",
    "load_checkpoint",
    "SegmentationTrainer",
    "save_model",
    # scores: inference, aggregation, binarization
    "Inference",
    "ChunkScores",
    "aggregate",
    "Binarize",
    # audio and annotations
    "AudioReader",
    "validate_file",
    "fetch_sample",
    "fetch_ami_excerpts",
    "load_folder",
    "read_rttm",
    "read_uem",
    "write_rttm",
    "write_uem",
    # errors
    "SksegError",
    "FileError",
    "AudioError",
    "CheckpointError",
    "UnsafeCheckpointError",
    "WeightsUnavailableError",
    "StreamError",
    "TrainingError",
    "LabelStudioError",
]
