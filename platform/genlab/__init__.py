"""genlab: generative data purification and causal generative modelling on Ray + MLflow."""

__version__ = "0.1.0"
