"""Retraining: a search run's winners and baselines trained with one recipe, exported,
measured on the device, and compared with what was predicted.

* :mod:`.run` -- ``run_retrain``: select, train, measure, predict, write retrain.csv;
* :mod:`.result` -- one model (``Model``), its result file and its ONNX export;
* :mod:`.queue` -- the trainings as a work queue many machines share;
* :mod:`.plan` -- how long the trainings will take, before they start;
* :mod:`.deploy` -- weights from the supernet instead of training from scratch;
* :mod:`.int8` -- the quantized models and their accuracy;
* :mod:`.table` -- the retrain table and its summary.
"""
