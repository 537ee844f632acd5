"""The board-measuring side: reach a device (:mod:`.hosts`: device.json, SSH), ship a
bundle of ONNX models to it (:mod:`.bundle`), measure there (:mod:`.profile`,
:mod:`.measure`), keep the latency tables (:mod:`.lut`, :mod:`.refine`), watch the drift
(:mod:`.drift`) and make int8 models (:mod:`.quantize`, :mod:`.precision`).

The code that runs on the board itself is :mod:`hwnas.onboard`; the resolved device
(name, config, table) passed along the pipeline is :class:`hwnas.context.Device`.
"""
