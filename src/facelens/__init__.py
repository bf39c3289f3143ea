"""FaceLens: self-hosted face analysis that speaks Amazon Rekognition's wire protocol."""

__version__ = "0.1.0"
