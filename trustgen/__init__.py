"""trustgen: private and trustworthy generative modelling."""

__version__ = "0.1.0"

