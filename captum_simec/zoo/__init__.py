"""Fixtures for the demo, tutorials, tests and benchmarks: reference models, trainers, data.

Not part of the method. `models` and `recurrent` hold the papers' and the benchmarks'
architectures (they import no data), `training` the seeded trainers, `datasets` the small
loaders (scikit-learn is imported only by the digits loader), and `text` a synthetic sentiment
task over real words. Names load on first use.
"""

from captum_simec._lazy import lazy_exports

_EXPORTS = {
    "captum_simec.zoo.datasets": (
        "RegressionData",
        "Split",
        "load_ccpp",
        "load_digits",
        "load_mnist",
        "mnist_domain",
        "mnist_split",
        "shared_data_dir",
        "synthetic_regression",
    ),
    "captum_simec.zoo.models": (
        "MLP",
        "BasicBlock",
        "PaperMNISTCNN",
        "ResNet18Like",
        "ResidualCNN",
        "ToyNet",
        "count_parameters",
    ),
    "captum_simec.zoo.recurrent": ("PowerPlantResidualLSTM", "SequenceGRU", "SequenceLSTM"),
    "captum_simec.zoo.text": ("TextData", "synthetic_sentiment"),
    "captum_simec.zoo.training": (
        "accuracy",
        "fit_digits_cnn",
        "float64_model",
        "train_classifier",
        "train_regressor",
    ),
}

__all__ = sorted(name for names in _EXPORTS.values() for name in names)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
