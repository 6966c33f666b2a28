"""The four pipelines as scikit-learn estimators over one shared network."""

from .base import BaseSegmentationEstimator
from .loading import PIPELINES, load_pipeline, pipeline_name
from .osd import OSDEstimator
from .resegmentation import ResegmentationEstimator
from .segmentation import SegmentationEstimator
from .vad import VADEstimator

__all__ = [
    "BaseSegmentationEstimator",
    "PIPELINES",
    "load_pipeline",
    "pipeline_name",
    "OSDEstimator",
    "ResegmentationEstimator",
    "SegmentationEstimator",
    "VADEstimator",
]
