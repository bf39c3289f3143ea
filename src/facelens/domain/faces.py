"""DetectFaces and CompareFaces: the image operations that need no collection.

CompareFaces passes the accountability gate like every identification: its threshold is raised to the server's
compare floor, disclosed, and the comparison is audited (where there is an audit log) before it is answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facelens import analysis
from facelens.calibration import Calibration
from facelens.context import RequestContext
from facelens.domain.common import image_bytes
from facelens.domain.ports import Analyzer, Gate


class FaceService:
    """Face detection and 1:1 comparison with one analyzer."""

    def __init__(self, analyzer: Analyzer, gate: Gate, calibration_for: Callable[[str], Calibration]) -> None:
        self.analyzer = analyzer
        self.gate = gate
        self.calibration_for = calibration_for

    def detect_faces(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """DetectFaces: every face (the 100 largest), with the requested attributes."""
        return analysis.detect_faces(image_bytes(params["Image"]), attributes=params.get("Attributes"),
                                     analyzer=self.analyzer, max_bytes=context.max_image_bytes)

    def compare_faces(self, params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
        """CompareFaces: the largest source face against every target face, at the gate's threshold; audited."""
        threshold = self.gate.admit_compare(context, params.get("SimilarityThreshold"))
        response = analysis.compare_faces(
            image_bytes(params["SourceImage"]), image_bytes(params["TargetImage"]),
            similarity_threshold=threshold.effective, quality_filter=params.get("QualityFilter"),
            analyzer=self.analyzer, max_bytes=context.max_image_bytes,
            calibration=self.calibration_for(self.analyzer.model_version))
        self.gate.record_compare(context, threshold, self.analyzer.model_version,
                                 [match["Similarity"] for match in response["FaceMatches"]])
        return response
