"""Training data: lazy manifests (JSON / JSONL / YAML mixtures) -> processor outputs -> padded or packed batches."""

from .collator import LlavaOVCollator
from .dataset import LlavaOVDataset
from .manifests import Manifest, ManifestRecord, load_manifest, sampling_indices, validate_sample
from .sampler import LengthGroupedSampler, TokenBudgetBatchSampler
from .samples import SampleInputs, sample_inputs
from .scan import ScanResult, scan_manifest

__all__ = [
    "LengthGroupedSampler",
    "LlavaOVCollator",
    "LlavaOVDataset",
    "Manifest",
    "ManifestRecord",
    "SampleInputs",
    "ScanResult",
    "TokenBudgetBatchSampler",
    "load_manifest",
    "sample_inputs",
    "sampling_indices",
    "scan_manifest",
    "validate_sample",
]
