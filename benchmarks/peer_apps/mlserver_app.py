"""An MLServer custom runtime that scores with ONNX Runtime (MLServer has no ONNX runtime).

``model-settings.json`` points ``implementation`` at ``mlserver_app.OrtRuntime`` and
``parameters.uri`` at the ``model.onnx``. MLServer's adaptive batching concatenates
requests along the first dim before :meth:`predict` and splits the answer back.
"""

from __future__ import annotations

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from ort_session import make_session


class OrtRuntime(MLModel):
    """Loads ``parameters.uri`` into an ONNX Runtime session; one input, one output."""

    async def load(self) -> bool:
        """Create the session (MLServer calls this once at start)."""
        uri = self.settings.parameters.uri if self.settings.parameters else None
        if not uri:
            raise ValueError("model-settings.json needs parameters.uri (path of model.onnx)")
        self._session = make_session(uri)
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Run the (possibly batched) request through the session."""
        data = NumpyCodec.decode_input(payload.inputs[0])
        (result,) = self._session.run([self._output], {self._input: data})
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(self._output, result)],
        )
