"""skseg: pyannote's speaker segmentation model as scikit-learn estimators."""

from .audio import AudioReader, validate_file
from .batch import BatchResult, FileFailure, predict_many
from .binarize import Binarize
from .checkpoint import load_checkpoint
from .datasets import fetch_sample
from .exceptions import (
    AudioError,
    CheckpointError,
    FileError,
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
from .tuning import tune

__version__ = "0.1.0.dev0"

__all__ = [
    "AudioError",
    "AudioReader",
    "Binarize",
    "CheckpointError",
    "ChunkScores",
    "FileError",
    "DiarizationEstimator",
    "OSDEstimator",
    "ResegmentationEstimator",
    "SegmentationEstimator",
    "VADEstimator",
    "Inference",
    "SegmentationModel",
    "SksegError",
    "UnsafeCheckpointError",
    "WeightsUnavailableError",
    "aggregate",
    "fetch_sample",
    "load_checkpoint",
    "load_model",
    "validate_file",
    "BatchResult",
    "FileFailure",
    "predict_many",
    "load_folder",
    "read_rttm",
    "read_uem",
    "write_rttm",
    "write_uem",
    "tune",
]
