"""kinema: an open implementation of the HunyuanVideo text-to-video system."""

__version__ = "0.1.0"
