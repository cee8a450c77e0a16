"""Export of tfdepth models: SavedModel with serving signatures, TFLite (float / int8), QAT.

Modules (imported explicitly; this package imports nothing heavy):
  saved_model    export_saved_model / load_saved_model: ``serving_default`` (uint8, any size),
                 ``native`` (float32 at model size) and ``metadata`` signatures
  tflite         convert_to_tflite(model, fmt) for tflite_fp32 / fp16 / dynamic / int8, builtin
                 ops only; representative_dataset_from for int8 calibration
  float_tail     int8 with the output tail (sigmoid, disp_to_depth...) kept in float: selective
                 quantisation of the converter's calibrated graph (tflite_int8 and QAT use it);
                 tighten_saturating_inputs: ELU / sigmoid / tanh input ranges clipped where the
                 activation saturates
  bias_correction  correct_head_bias: the int8 head's mean int8 - float shift, measured on the
                 calibration images, removed from its int32 bias (opt-in for tflite_int8)
  rewrite        tflite_friendly(model): bit-identical replacements of ReflectionPadding2D and
                 nearest UpSampling2D whose TFLite ops (MIRROR_PAD, TILE) XNNPACK cannot run,
                 and of scalar 1x1 depthwise convs (FastDepth's x max_depth) by a MUL;
                 split_concat_convs(model) (opt-in for tflite_int8): conv(concat(a, b)) ->
                 conv_a(a) + conv_b(b), so that each input keeps its own int8 scale
  litert_runner  LiteRTRunner (ai_edge_litert) and SavedModelRunner: predict + latency;
                 op_summary(tflite): op types, float ops of int8 models, XNNPACK partitions
  qat            quantization_aware_training: tf_keras + tfmot in a subprocess (_qat_worker)
  report, cli    export_and_report (size, latency, metrics, parity with the Keras model) and
                 the ``tfdepth-export`` entry point
"""
