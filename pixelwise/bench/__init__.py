"""Measure, optimize and deploy: what a model costs and how to make it cheaper.

- measure.py: parameters, FLOPs (multiply-add = 2), latency, peak memory, the device's matmul peak;
- optimize.py: inference_mode, channels-last, batch-norm folding, torch.compile, bf16/fp16 autocast;
- benchmark.py: one configuration measured end to end (`pixelwise bench`);
- export.py: ONNX export, parity with PyTorch, onnxruntime timing (`pixelwise export`);
- quantize.py: 8-bit static quantization with onnxruntime and its accuracy/mIoU drop.
Modules are imported where used, so that the command line starts fast.
"""
