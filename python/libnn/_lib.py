"""Loads libnn's shared library and declares every function of include/nn.h.

The library is looked up, in order, at:
  1. $LIBNN_PATH (a path to libnn.so),
  2. lib/libnn.so of the source tree this package sits in (../../lib),
  3. ctypes.util.find_library("nn"), then the soname "libnn.so.0".

Every function gets argtypes and restype. Functions returning nn_status get
an errcheck that raises libnn.Error (the right subclass) with
nn_last_error(); constructors returning NULL raise as well. Handles are
typed pointers to distinct opaque structs, so passing a tensor where a model
is expected fails in ctypes instead of in C.
"""

import ctypes
import ctypes.util
import os

from . import errors

c_int, c_int64, c_uint64, c_float, c_double, c_size_t, c_char_p, c_void_p = (
    ctypes.c_int, ctypes.c_int64, ctypes.c_uint64, ctypes.c_float,
    ctypes.c_double, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p)

# ---------------------------------------------------------------- constants
NN_OK = 0
NN_ERR_STATE = -7
NN_ERR_CANCELLED = -9

PADDING_VALID, PADDING_SAME = 0, 1
ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX, ACT_RELU6 = 0, 1, 2, 3, 4
ACT_TANH, ACT_ELU, ACT_LEAKY_RELU = 5, 6, 7
(INIT_DEFAULT, INIT_ZEROS, INIT_ONES, INIT_GLOROT_UNIFORM, INIT_GLOROT_NORMAL,
 INIT_HE_UNIFORM, INIT_HE_NORMAL, INIT_RANDOM_NORMAL) = range(8)
LOSS_CCE, LOSS_SPARSE_CCE, LOSS_BCE, LOSS_IOU, LOSS_DICE = 1, 2, 3, 4, 5
LOSS_REDUCE_BATCH, LOSS_REDUCE_IMAGE = 0, 1
ADAM_EPS_KERAS, ADAM_EPS_TORCH = 0, 1
PROGRESS_BATCH_END, PROGRESS_EPOCH_END = 0, 1
(METRIC_LOSS, METRIC_ACCURACY, METRIC_VAL_LOSS, METRIC_VAL_ACCURACY,
 METRIC_EPOCH_SECONDS) = range(5)
METRIC_GRAD_NORM, METRIC_GRAD_NORM_MAX, METRIC_HEALTH = 5, 6, 7
(METRIC_IOU, METRIC_VAL_IOU, METRIC_MEAN_IOU, METRIC_VAL_MEAN_IOU,
 METRIC_DICE, METRIC_VAL_DICE, METRIC_PIXEL_ACCURACY,
 METRIC_VAL_PIXEL_ACCURACY) = range(8, 16)
(METRIC_PRECISION, METRIC_VAL_PRECISION, METRIC_RECALL, METRIC_VAL_RECALL,
 METRIC_F1, METRIC_VAL_F1, METRIC_ROC_AUC,
 METRIC_VAL_ROC_AUC) = range(16, 24)
WEIGHT_NORM_SAMPLES, WEIGHT_NORM_SUM = 0, 1
AVERAGE_MACRO, AVERAGE_MICRO, AVERAGE_WEIGHTED = 0, 1, 2
SAVE_DEFAULT, SAVE_OPTIMIZER = 0, 1
MAX_RANK = 8


# ------------------------------------------------------------ opaque handles
class _Opaque(ctypes.Structure):
    _fields_ = []


class nn_tensor(_Opaque):
    pass


class nn_model(_Opaque):
    pass


class nn_layer(_Opaque):
    pass


class nn_optimizer(_Opaque):
    pass


class nn_context(_Opaque):
    pass


class nn_history(_Opaque):
    pass


TensorP = ctypes.POINTER(nn_tensor)
ModelP = ctypes.POINTER(nn_model)
LayerP = ctypes.POINTER(nn_layer)
OptimizerP = ctypes.POINTER(nn_optimizer)
ContextP = ctypes.POINTER(nn_context)
HistoryP = ctypes.POINTER(nn_history)
FloatP = ctypes.POINTER(c_float)
Int64P = ctypes.POINTER(c_int64)
IntP = ctypes.POINTER(c_int)


# ------------------------------------------------------------ option structs
# Mirrors of the size-prefixed structs; enums are C ints. Build them with
# make_opts(), which fills `size`.
class nn_layer_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p)]


class nn_conv2d_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("stride_h", c_int), ("stride_w", c_int),
                ("padding", c_int), ("use_bias", c_int),
                ("activation", c_int), ("kernel_init", c_int),
                ("bias_init", c_int)]


class nn_pool2d_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("stride_h", c_int), ("stride_w", c_int), ("padding", c_int)]


class nn_dense_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("use_bias", c_int), ("activation", c_int),
                ("kernel_init", c_int), ("bias_init", c_int)]


class nn_loss_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("from_logits", c_int),
                ("smooth", c_double), ("eps", c_double),
                ("reduction", c_int), ("sparse_labels", c_int),
                ("class_weights", FloatP), ("num_class_weights", c_int),
                ("pos_weight", c_float), ("weight_norm", c_int)]


class nn_adam_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("learning_rate", c_float),
                ("beta1", c_float), ("beta2", c_float), ("epsilon", c_float),
                ("eps_mode", c_int)]


class nn_sgd_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("learning_rate", c_float),
                ("momentum", c_float), ("nesterov", c_int)]


class nn_progress(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("event", c_int),
                ("epoch", c_int), ("epochs", c_int),
                ("batch", c_int), ("batches", c_int),
                ("samples_seen", c_int64),
                ("loss", c_float), ("accuracy", c_float),
                ("val_loss", c_float), ("val_accuracy", c_float),
                ("elapsed_s", c_double), ("images_per_s", c_double),
                ("iou", c_float), ("mean_iou", c_float),
                ("val_iou", c_float), ("val_mean_iou", c_float)]


nn_progress_fn = ctypes.CFUNCTYPE(c_int, ctypes.POINTER(nn_progress), c_void_p)


class nn_binary_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("positive_class", c_int),
                ("threshold", c_float)]


# nn_fit_opts.sync (an nn_sync_fn): data-parallel fit (docs/mpi.md).
nn_sync_fn = ctypes.CFUNCTYPE(c_int, ModelP, ctypes.POINTER(c_double), c_int,
                              c_int, c_void_p)


class nn_fit_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("epochs", c_int), ("batch_size", c_int),
                ("shuffle", c_int), ("val_x", TensorP), ("val_y", TensorP),
                ("progress", nn_progress_fn), ("user", c_void_p),
                ("record_grad_norm", c_int), ("stop_on_nonfinite", c_int),
                ("segmentation_metrics", c_int),
                ("class_weight", FloatP), ("num_class_weight", c_int),
                ("sample_weight", TensorP),
                ("decision_metrics", ctypes.POINTER(nn_binary_opts)),
                ("sync", nn_sync_fn), ("sync_user", c_void_p),
                ("rank", c_int), ("world_size", c_int)]


# The NN_*_OPTS_INIT defaults of nn.h.
_DEFAULTS = {
    nn_layer_opts: {},
    nn_conv2d_opts: dict(stride_h=1, stride_w=1, padding=PADDING_VALID,
                         use_bias=1, activation=ACT_NONE,
                         kernel_init=INIT_DEFAULT, bias_init=INIT_DEFAULT),
    nn_pool2d_opts: dict(stride_h=0, stride_w=0, padding=PADDING_VALID),
    nn_dense_opts: dict(use_bias=1, activation=ACT_NONE,
                        kernel_init=INIT_DEFAULT, bias_init=INIT_DEFAULT),
    nn_loss_opts: dict(from_logits=0, smooth=1.0, eps=1e-7,
                       reduction=LOSS_REDUCE_BATCH, sparse_labels=0,
                       pos_weight=1.0, weight_norm=WEIGHT_NORM_SAMPLES),
    nn_binary_opts: dict(positive_class=1, threshold=0.5),
    nn_adam_opts: dict(learning_rate=1e-3, beta1=0.9, beta2=0.999,
                       epsilon=1e-7, eps_mode=ADAM_EPS_KERAS),
    nn_sgd_opts: dict(learning_rate=0.01, momentum=0.0, nesterov=0),
    nn_fit_opts: dict(epochs=1, batch_size=32, shuffle=1, world_size=1),
}


def make_opts(cls, **values):
    """An options struct with `size` set and nn.h's defaults, then values."""
    o = cls()
    o.size = ctypes.sizeof(cls)
    for k, v in {**_DEFAULTS.get(cls, {}), **values}.items():
        setattr(o, k, v)
    return o


# ------------------------------------------------------------------ loading
def _candidates():
    env = os.environ.get("LIBNN_PATH")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    repo_lib = os.path.join(here, "..", "..", "lib", "libnn.so")
    found = [os.path.normpath(repo_lib)]
    name = ctypes.util.find_library("nn")
    if name:
        found.append(name)
    found.append("libnn.so.0")
    return found


def load_library(candidates, what, hint):
    """The first of the candidate paths or names that ctypes loads, and
    its path; ImportError listing every attempt otherwise."""
    tried = []
    for path in candidates:
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} (missing)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{path} ({e})")
    raise ImportError(f"{what}: cannot load the shared library; tried "
                      + "; ".join(tried) + " - " + hint)


def _load():
    hint = ("LIBNN_PATH is set but unusable" if os.environ.get("LIBNN_PATH")
            else "build it with `make lib` or set LIBNN_PATH to libnn.so")
    return load_library(_candidates(), "libnn", hint)


lib, path = _load()


def last_error():
    msg = lib.nn_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


# ------------------------------------------------------------ error checks
def _check_status(result, func, args):
    if result != NN_OK:
        raise errors.from_status(result, last_error(), func.__name__)
    return result


def null_error(func_name, default=errors.InvalidArgument):
    """The exception for a constructor that returned NULL. The C API gives
    no status code then, so the class is guessed from the message."""
    msg = last_error()
    status = lib.nn_last_status()
    if status != NN_OK:
        return errors.from_status(status, msg or "returned NULL", func_name)
    low = msg.lower()
    if "memory" in low or "alloc" in low:
        cls = errors.OutOfMemory
    elif ("shape" in low or "does not fit" in low or " rank " in low
          or "expected" in low and "rank" in low):
        cls = errors.ShapeError
    elif "cannot open" in low or "not a regular file" in low \
            or "cannot read" in low:
        cls = errors.FileError
    else:
        cls = default
    return cls(msg or "returned NULL", None, func_name)


def _check_nonnull(result, func, args):
    if not result:
        raise null_error(func.__name__)
    return result


# name: (restype, argtypes, check) - check is "status", "nonnull" or None.
_S, _N = "status", "nonnull"
_SIGNATURES = {
    "nn_version": (c_char_p, [], None),
    "nn_version_number": (c_int, [], None),
    "nn_last_error": (c_char_p, [], None),
    "nn_status_name": (c_char_p, [c_int], None),
    "nn_clear_error": (None, [], None),
    "nn_last_status": (c_int, [], None),
    "nn_set_num_threads": (c_int, [c_int], _S),
    "nn_get_num_threads": (c_int, [], None),
    # tensors
    "nn_tensor_create": (TensorP, [c_int, Int64P], _N),
    "nn_tensor_wrap": (TensorP, [c_int, Int64P, FloatP], _N),
    "nn_tensor_free": (None, [TensorP], None),
    "nn_tensor_rank": (c_int, [TensorP], None),
    "nn_tensor_dim": (c_int64, [TensorP, c_int], None),
    "nn_tensor_size": (c_int64, [TensorP], None),
    "nn_tensor_shape": (c_int, [TensorP, Int64P, c_int], _S),
    "nn_tensor_data": (FloatP, [TensorP], None),
    "nn_tensor_data_const": (FloatP, [TensorP], None),
    "nn_tensor_reshape": (c_int, [TensorP, c_int, Int64P], _S),
    # models and layers
    "nn_model_create": (ModelP, [c_uint64], _N),
    "nn_model_free": (None, [ModelP], None),
    "nn_input": (LayerP, [ModelP, c_int, IntP,
                          ctypes.POINTER(nn_layer_opts)], _N),
    "nn_conv2d": (LayerP, [ModelP, LayerP, c_int, c_int, c_int,
                           ctypes.POINTER(nn_conv2d_opts)], _N),
    "nn_maxpool2d": (LayerP, [ModelP, LayerP, c_int, c_int,
                              ctypes.POINTER(nn_pool2d_opts)], _N),
    "nn_avgpool2d": (LayerP, [ModelP, LayerP, c_int, c_int,
                              ctypes.POINTER(nn_pool2d_opts)], _N),
    "nn_flatten": (LayerP, [ModelP, LayerP,
                            ctypes.POINTER(nn_layer_opts)], _N),
    "nn_dropout": (LayerP, [ModelP, LayerP, c_float,
                            ctypes.POINTER(nn_layer_opts)], _N),
    "nn_dense": (LayerP, [ModelP, LayerP, c_int,
                          ctypes.POINTER(nn_dense_opts)], _N),
    "nn_relu": (LayerP, [ModelP, LayerP, ctypes.POINTER(nn_layer_opts)], _N),
    "nn_sigmoid": (LayerP, [ModelP, LayerP,
                            ctypes.POINTER(nn_layer_opts)], _N),
    "nn_softmax": (LayerP, [ModelP, LayerP,
                            ctypes.POINTER(nn_layer_opts)], _N),
    "nn_model_set_output": (c_int, [ModelP, LayerP], _S),
    "nn_model_set_name": (c_int, [ModelP, c_char_p], _S),
    "nn_model_name": (c_char_p, [ModelP], None),
    "nn_model_apply": (LayerP, [ModelP, LayerP, ModelP, LayerP,
                                ctypes.POINTER(nn_layer_opts)], _N),
    "nn_model_num_layers": (c_int, [ModelP], None),
    "nn_model_input": (LayerP, [ModelP], None),
    "nn_model_output": (LayerP, [ModelP], None),
    "nn_model_layer": (LayerP, [ModelP, c_int], None),
    "nn_model_find_layer": (LayerP, [ModelP, c_char_p], None),
    "nn_layer_name": (c_char_p, [LayerP], None),
    "nn_layer_type": (c_char_p, [LayerP], None),
    "nn_layer_output_shape": (c_int, [LayerP, IntP, c_int], None),
    "nn_layer_num_params": (c_int64, [LayerP], None),
    "nn_layer_num_inputs": (c_int, [LayerP], None),
    "nn_layer_input": (LayerP, [LayerP, c_int], None),
    "nn_layer_num_weights": (c_int, [LayerP], None),
    "nn_layer_weight": (TensorP, [LayerP, c_int], None),
    "nn_layer_weight_name": (c_char_p, [LayerP, c_int], None),
    "nn_layer_weight_grad": (TensorP, [LayerP, c_int], None),
    "nn_model_num_params": (c_int64, [ModelP], None),
    "nn_model_num_trainable_params": (c_int64, [ModelP], None),
    "nn_model_summary": (c_int, [ModelP, ctypes.c_char_p, c_size_t,
                                 ctypes.POINTER(c_size_t)], _S),
    # losses, optimizers, compile
    "nn_adam": (OptimizerP, [ctypes.POINTER(nn_adam_opts)], _N),
    "nn_sgd": (OptimizerP, [ctypes.POINTER(nn_sgd_opts)], _N),
    "nn_optimizer_free": (None, [OptimizerP], None),
    "nn_optimizer_set_learning_rate": (c_int, [OptimizerP, c_float], _S),
    "nn_optimizer_iterations": (c_int64, [OptimizerP], None),
    "nn_model_compile": (c_int, [ModelP, OptimizerP, c_int,
                                 ctypes.POINTER(nn_loss_opts)], _S),
    # training and inference
    "nn_model_train_batch": (c_int, [ModelP, TensorP, TensorP, FloatP,
                                     FloatP], _S),
    "nn_model_backward": (c_int, [ModelP, TensorP, TensorP, c_int, FloatP,
                                  TensorP], _S),
    "nn_model_apply_gradients": (c_int, [ModelP], _S),
    # fit's status is checked by the caller: a callback may stop it.
    "nn_model_fit": (c_int, [ModelP, TensorP, TensorP,
                             ctypes.POINTER(nn_fit_opts),
                             ctypes.POINTER(HistoryP)], None),
    "nn_model_evaluate": (c_int, [ModelP, TensorP, TensorP, c_int, FloatP,
                                  FloatP], _S),
    "nn_model_predict": (c_int, [ModelP, TensorP, TensorP, c_int], _S),
    "nn_context_create": (ContextP, [ModelP], _N),
    "nn_context_free": (None, [ContextP], None),
    "nn_context_predict": (c_int, [ContextP, TensorP, TensorP, c_int], _S),
    "nn_history_epochs": (c_int, [HistoryP], None),
    "nn_history_get": (c_float, [HistoryP, c_int, c_int], None),
    "nn_history_write_csv": (c_int, [HistoryP, c_char_p], _S),
    "nn_history_free": (None, [HistoryP], None),
    # saving and loading
    "nn_model_save": (c_int, [ModelP, c_char_p, c_int], _S),
    "nn_model_load": (ModelP, [c_char_p], None),  # checked by the caller
    # data sets
    "nn_load_idx": (c_int, [c_char_p, c_int, ctypes.POINTER(TensorP)], _S),
    "nn_load_cifar10": (c_int, [ctypes.POINTER(c_char_p), c_int,
                                ctypes.POINTER(TensorP),
                                ctypes.POINTER(TensorP)], _S),
    "nn_one_hot": (c_int, [TensorP, c_int, ctypes.POINTER(TensorP)], _S),
}

# ---- model zoo and weight import (src/zoo/, src/io/safetensors.c)
RESNET_KERAS, RESNET_TORCHVISION = 0, 1
WEIGHTS_LIBNN, WEIGHTS_TORCHVISION_RESNET = 0, 1
WEIGHTS_TORCHVISION_MOBILENET_V2 = 2
MOBILENET_KERAS, MOBILENET_TORCHVISION = 0, 1
PREPROCESS_CAFFE, PREPROCESS_TF, PREPROCESS_TORCH = 0, 1, 2


class nn_resnet_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("flavor", c_int),
                ("include_top", c_int), ("classes", c_int),
                ("classifier_activation", c_int)]


_DEFAULTS[nn_resnet_opts] = dict(flavor=RESNET_KERAS, include_top=1,
                                 classes=1000,
                                 classifier_activation=ACT_SOFTMAX)


class nn_mobilenet_v2_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("flavor", c_int),
                ("include_top", c_int), ("classes", c_int),
                ("classifier_activation", c_int), ("alpha", c_double)]


_DEFAULTS[nn_mobilenet_v2_opts] = dict(flavor=MOBILENET_KERAS, include_top=1,
                                       classes=1000,
                                       classifier_activation=ACT_SOFTMAX,
                                       alpha=1.0)


class nn_unet_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("encoder_name", c_char_p), ("freeze_encoder", c_int),
                ("activation", c_int), ("dropout", c_double),
                ("bn_momentum", c_double)]


_DEFAULTS[nn_unet_opts] = dict(activation=ACT_NONE, bn_momentum=0.99)

_SIGNATURES.update({
    "nn_mobilenet_v2": (ModelP, [c_int, c_int, c_int, c_uint64,
                                 ctypes.POINTER(nn_mobilenet_v2_opts)], _N),
    "nn_unet": (ModelP, [ModelP, c_int, ctypes.POINTER(c_char_p), c_int,
                         ctypes.POINTER(c_int), c_int, c_uint64,
                         ctypes.POINTER(nn_unet_opts)], _N),
    "nn_resnet_identity_block": (LayerP, [ModelP, LayerP] + [c_int] * 5
                                 + [c_char_p], _N),
    "nn_resnet_conv_block": (LayerP, [ModelP, LayerP] + [c_int] * 6
                             + [c_char_p], _N),
    "nn_resnet50": (ModelP, [c_int, c_int, c_int, c_uint64,
                             ctypes.POINTER(nn_resnet_opts)], _N),
    "nn_model_load_safetensors": (c_int, [ModelP, c_char_p, c_int], _S),
    "nn_model_save_safetensors": (c_int, [ModelP, c_char_p], _S),
    "nn_preprocess_input": (c_int, [TensorP, c_int], _S),
})

# ---- augmentation layers (docs/augmentation.md)
FLIP_HORIZONTAL, FLIP_VERTICAL, FLIP_HORIZONTAL_AND_VERTICAL = 1, 2, 3
FILL_REFLECT, FILL_WRAP, FILL_CONSTANT, FILL_NEAREST = 0, 1, 2, 3
INTERP_BILINEAR, INTERP_NEAREST = 0, 1


class nn_augment_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("fill_mode", c_int),
                ("interpolation", c_int), ("fill_value", c_float)]


_DEFAULTS[nn_augment_opts] = dict(fill_mode=FILL_REFLECT,
                                  interpolation=INTERP_BILINEAR,
                                  fill_value=0.0)
_AUG_OPTS_P = ctypes.POINTER(nn_augment_opts)
_SIGNATURES.update({
    "nn_random_flip": (LayerP, [ModelP, LayerP, c_int,
                                ctypes.POINTER(nn_layer_opts)], _N),
    "nn_random_rotation": (LayerP, [ModelP, LayerP, c_float, c_float,
                                    _AUG_OPTS_P], _N),
    "nn_random_translation": (LayerP, [ModelP, LayerP] + [c_float] * 4
                              + [_AUG_OPTS_P], _N),
    "nn_random_zoom": (LayerP, [ModelP, LayerP] + [c_float] * 4
                       + [_AUG_OPTS_P], _N),
    "nn_random_contrast": (LayerP, [ModelP, LayerP, c_float, c_float,
                                    ctypes.POINTER(nn_layer_opts)], _N),
})

# ---- graph-model layers, freezing, receptive fields
class nn_batchnorm_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("momentum", c_float), ("epsilon", c_float),
                ("center", c_int), ("scale", c_int)]


class nn_resizing_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("interpolation", c_int)]


_DEFAULTS[nn_batchnorm_opts] = dict(momentum=0.99, epsilon=1e-3, center=1,
                                    scale=1)
_DEFAULTS[nn_resizing_opts] = dict(interpolation=INTERP_BILINEAR)
_LAYER_OPTS_P = ctypes.POINTER(nn_layer_opts)
_SIGNATURES.update({
    "nn_batchnorm": (LayerP, [ModelP, LayerP,
                              ctypes.POINTER(nn_batchnorm_opts)], _N),
    "nn_zeropad2d": (LayerP, [ModelP, LayerP] + [c_int] * 4
                     + [_LAYER_OPTS_P], _N),
    "nn_add": (LayerP, [ModelP, c_int, ctypes.POINTER(LayerP),
                        _LAYER_OPTS_P], _N),
    "nn_concatenate": (LayerP, [ModelP, c_int, ctypes.POINTER(LayerP),
                                _LAYER_OPTS_P], _N),
    "nn_global_avgpool2d": (LayerP, [ModelP, LayerP, _LAYER_OPTS_P], _N),
    "nn_resizing": (LayerP, [ModelP, LayerP, c_int, c_int,
                             ctypes.POINTER(nn_resizing_opts)], _N),
    "nn_repeat_channels": (LayerP, [ModelP, LayerP, c_int, _LAYER_OPTS_P],
                           _N),
    "nn_locally_connected2d": (LayerP, [ModelP, LayerP, c_int, c_int, c_int,
                                        ctypes.POINTER(nn_conv2d_opts)], _N),
    "nn_layer_set_trainable": (c_int, [LayerP, c_int], _S),
    "nn_layer_trainable": (c_int, [LayerP], None),
    "nn_model_set_trainable": (c_int, [ModelP, c_int], _S),
    "nn_layer_receptive_field": (c_int, [LayerP, IntP, IntP, IntP, IntP],
                                 _S),
})

# ---- segmentation layers
class nn_depthwise_conv2d_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("stride_h", c_int), ("stride_w", c_int),
                ("padding", c_int), ("depth_multiplier", c_int),
                ("use_bias", c_int), ("activation", c_int),
                ("kernel_init", c_int), ("bias_init", c_int),
                ("kernel_init_stddev", c_float),
                ("bias_init_stddev", c_float)]


class nn_conv2d_transpose_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("stride_h", c_int), ("stride_w", c_int),
                ("padding", c_int), ("output_padding_h", c_int),
                ("output_padding_w", c_int), ("use_bias", c_int),
                ("activation", c_int), ("kernel_init", c_int),
                ("bias_init", c_int), ("reserved", c_int),
                ("kernel_init_stddev", c_float),
                ("bias_init_stddev", c_float)]


class nn_separable_conv2d_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("stride_h", c_int), ("stride_w", c_int),
                ("padding", c_int), ("depth_multiplier", c_int),
                ("use_bias", c_int), ("activation", c_int),
                ("depthwise_init", c_int), ("pointwise_init", c_int),
                ("bias_init", c_int), ("depthwise_init_stddev", c_float),
                ("pointwise_init_stddev", c_float),
                ("bias_init_stddev", c_float)]


class nn_upsampling2d_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("interpolation", c_int), ("reserved", c_int)]


_DEFAULTS[nn_depthwise_conv2d_opts] = dict(
    stride_h=1, stride_w=1, padding=PADDING_VALID, depth_multiplier=1,
    use_bias=1, activation=ACT_NONE, kernel_init=INIT_DEFAULT,
    bias_init=INIT_DEFAULT, kernel_init_stddev=0.0, bias_init_stddev=0.0)
_DEFAULTS[nn_conv2d_transpose_opts] = dict(
    stride_h=1, stride_w=1, padding=PADDING_VALID, output_padding_h=-1,
    output_padding_w=-1, use_bias=1, activation=ACT_NONE,
    kernel_init=INIT_DEFAULT, bias_init=INIT_DEFAULT, reserved=0,
    kernel_init_stddev=0.0, bias_init_stddev=0.0)
_DEFAULTS[nn_separable_conv2d_opts] = dict(
    stride_h=1, stride_w=1, padding=PADDING_VALID, depth_multiplier=1,
    use_bias=1, activation=ACT_NONE, depthwise_init=INIT_DEFAULT,
    pointwise_init=INIT_DEFAULT, bias_init=INIT_DEFAULT,
    depthwise_init_stddev=0.0, pointwise_init_stddev=0.0,
    bias_init_stddev=0.0)
_DEFAULTS[nn_upsampling2d_opts] = dict(interpolation=INTERP_NEAREST,
                                       reserved=0)
_SIGNATURES.update({
    "nn_relu6": (LayerP, [ModelP, LayerP, _LAYER_OPTS_P], _N),
    "nn_depthwise_conv2d": (LayerP, [ModelP, LayerP, c_int, c_int,
                                     ctypes.POINTER(nn_depthwise_conv2d_opts)],
                            _N),
    "nn_conv2d_transpose": (LayerP, [ModelP, LayerP, c_int, c_int, c_int,
                                     ctypes.POINTER(nn_conv2d_transpose_opts)],
                            _N),
    "nn_separable_conv2d": (LayerP, [ModelP, LayerP, c_int, c_int, c_int,
                                     ctypes.POINTER(
                                         nn_separable_conv2d_opts)], _N),
    "nn_upsampling2d": (LayerP, [ModelP, LayerP, c_int, c_int,
                                 ctypes.POINTER(nn_upsampling2d_opts)], _N),
    "nn_cropping2d": (LayerP, [ModelP, LayerP] + [c_int] * 4
                      + [_LAYER_OPTS_P], _N),
})


# ---- activation layers (LeakyReLU, PReLU, ELU, tanh)
class nn_prelu_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("name", c_char_p),
                ("shared_axes", ctypes.c_uint), ("alpha_init", c_int),
                ("alpha_init_value", c_float), ("reserved", c_int)]


_DEFAULTS[nn_prelu_opts] = dict(shared_axes=0, alpha_init=INIT_DEFAULT,
                                alpha_init_value=0.0, reserved=0)
_SIGNATURES.update({
    "nn_tanh": (LayerP, [ModelP, LayerP, _LAYER_OPTS_P], _N),
    "nn_leaky_relu": (LayerP, [ModelP, LayerP, c_float, _LAYER_OPTS_P], _N),
    "nn_elu": (LayerP, [ModelP, LayerP, c_float, _LAYER_OPTS_P], _N),
    "nn_prelu": (LayerP, [ModelP, LayerP, ctypes.POINTER(nn_prelu_opts)],
                 _N),
})

# ---- gradient diagnostics and clipping (docs/diagnostics.md)
HEALTH_NAMES = ("ok", "vanishing", "exploding", "nonfinite")


class nn_diag_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("record", c_int),
                ("check_finite", c_int), ("window", c_int),
                ("vanishing_ratio", c_float), ("vanishing_floor", c_float),
                ("exploding_ratio", c_float), ("exploding_ceiling", c_float),
                ("exploding_growth", c_float)]


class nn_grad_report(_Opaque):
    pass


GradReportP = ctypes.POINTER(nn_grad_report)
_DEFAULTS[nn_diag_opts] = dict(record=1, check_finite=0, window=20,
                               vanishing_ratio=1e-3, vanishing_floor=1e-8,
                               exploding_ratio=1e3, exploding_ceiling=1e3,
                               exploding_growth=1e2)
_SIGNATURES.update({
    "nn_model_set_diagnostics": (c_int, [ModelP,
                                         ctypes.POINTER(nn_diag_opts)], _S),
    "nn_optimizer_set_global_clipnorm": (c_int, [OptimizerP, c_float], _S),
    "nn_optimizer_set_clipvalue": (c_int, [OptimizerP, c_float], _S),
    "nn_model_grad_report": (c_int, [ModelP, ctypes.POINTER(GradReportP)],
                             _S),
    "nn_grad_report_free": (None, [GradReportP], None),
    "nn_grad_report_num_layers": (c_int, [GradReportP], None),
    "nn_grad_report_layer_name": (c_char_p, [GradReportP, c_int], None),
    "nn_grad_report_num_weights": (c_int, [GradReportP, c_int], None),
    "nn_grad_report_grad_norm": (c_double, [GradReportP, c_int, c_int], None),
    "nn_grad_report_weight_norm": (c_double, [GradReportP, c_int, c_int],
                                   None),
    "nn_grad_report_update_ratio": (c_double, [GradReportP, c_int, c_int],
                                    None),
    "nn_grad_report_global_norm": (c_double, [GradReportP], None),
    "nn_grad_report_step": (c_int64, [GradReportP], None),
    "nn_grad_report_health": (c_int, [GradReportP, c_int, IntP,
                                      ctypes.POINTER(c_char_p)], _S),
    "nn_model_grad_summary": (c_int, [ModelP, ctypes.c_char_p, c_size_t,
                                      ctypes.POINTER(c_size_t)], _S),
    "nn_history_num_steps": (c_int64, [HistoryP], None),
    "nn_history_step_get": (c_float, [HistoryP, c_int, c_int64], None),
})

# ---- images and segmentation data (docs/data.md)
IMAGE_MAX_VALUES = 1 << 27
MASK_CLASS_IDS, MASK_BINARY = 0, 1
DEFECT_NAMES = ("none", "scratch", "pit", "crack", "stain")


class nn_image_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("height", c_int), ("width", c_int),
                ("max_values", c_int64), ("mask_mode", c_int),
                ("num_classes", c_int)]


class nn_pixels_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("stride", c_size_t), ("scale", c_float),
                ("mean", c_float * 4), ("std", c_float * 4)]


class nn_defects_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("count", c_int), ("height", c_int),
                ("width", c_int), ("channels", c_int),
                ("defect_fraction", c_float), ("typed_masks", c_int),
                ("seed", c_uint64)]


_DEFAULTS[nn_image_opts] = dict(height=0, width=0,
                                max_values=IMAGE_MAX_VALUES,
                                mask_mode=MASK_CLASS_IDS, num_classes=2)
_DEFAULTS[nn_pixels_opts] = dict(stride=0, scale=1.0 / 255.0,
                                 mean=(c_float * 4)(0, 0, 0, 0),
                                 std=(c_float * 4)(1, 1, 1, 1))
_DEFAULTS[nn_defects_opts] = dict(count=256, height=128, width=128,
                                  channels=3, defect_fraction=0.5,
                                  typed_masks=0, seed=0)
_TensorPP = ctypes.POINTER(TensorP)
_ImageOptsP = ctypes.POINTER(nn_image_opts)
_SIGNATURES.update({
    "nn_image_load": (c_int, [c_char_p, c_int, _ImageOptsP, _TensorPP], _S),
    "nn_mask_load": (c_int, [c_char_p, _ImageOptsP, _TensorPP], _S),
    "nn_image_load_batch": (c_int, [ctypes.POINTER(c_char_p), c_int, c_int,
                                    _ImageOptsP, _TensorPP], _S),
    "nn_image_resize": (c_int, [TensorP, c_int, c_int, c_int, _TensorPP],
                        _S),
    "nn_image_save_png": (c_int, [c_char_p, TensorP, c_int64], _S),
    "nn_mask_save_png": (c_int, [c_char_p, TensorP, c_int64], _S),
    "nn_image_from_u8": (c_int, [c_void_p, c_int, c_int, c_int,
                                 ctypes.POINTER(nn_pixels_opts), TensorP,
                                 c_int64], _S),
    "nn_seg_load_manifest": (c_int, [c_char_p, c_int, _ImageOptsP,
                                     _TensorPP, _TensorPP], _S),
    "nn_seg_random_flip": (c_int, [TensorP, TensorP, c_int, c_uint64], _S),
    "nn_synthetic_defects": (c_int, [ctypes.POINTER(nn_defects_opts),
                                     _TensorPP, _TensorPP, _TensorPP], _S),
    "nn_defect_name": (c_char_p, [c_int], None),
})


# ---- segmentation losses and metrics (docs/losses.md)
class nn_confusion(_Opaque):
    pass


ConfusionP = ctypes.POINTER(nn_confusion)
_SIGNATURES.update({
    "nn_model_compile_weighted": (c_int, [ModelP, OptimizerP, c_int, IntP,
                                          FloatP,
                                          ctypes.POINTER(nn_loss_opts)], _S),
    "nn_confusion_create": (ConfusionP, [c_int], _N),
    "nn_confusion_free": (None, [ConfusionP], None),
    "nn_confusion_reset": (c_int, [ConfusionP], _S),
    "nn_confusion_classes": (c_int, [ConfusionP], None),
    "nn_confusion_update": (c_int, [ConfusionP, TensorP, TensorP, c_int], _S),
    "nn_confusion_count": (c_int64, [ConfusionP, c_int, c_int], None),
    "nn_confusion_iou": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_dice": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_mean_iou": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_mean_dice": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_pixel_accuracy": (c_double, [ConfusionP], None),
    "nn_model_evaluate_confusion": (c_int, [ModelP, TensorP, TensorP, c_int,
                                            ConfusionP, FloatP], _S),
})

# ---- weighted losses and decision metrics (docs/metrics.md)
class nn_curve(_Opaque):
    pass


class nn_binary_report(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("threshold", c_float),
                ("tp", c_int64), ("fp", c_int64), ("tn", c_int64),
                ("fn", c_int64), ("precision", c_double),
                ("recall", c_double), ("f1", c_double),
                ("accuracy", c_double), ("roc_auc", c_double),
                ("average_precision", c_double)]


CurveP = ctypes.POINTER(nn_curve)
DoubleP = ctypes.POINTER(c_double)
_ReportP = ctypes.POINTER(nn_binary_report)
_SIGNATURES.update({
    "nn_confusion_precision": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_recall": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_f1": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_precision_avg": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_recall_avg": (c_double, [ConfusionP, c_int], None),
    "nn_confusion_f1_avg": (c_double, [ConfusionP, c_int], None),
    "nn_curve_create": (CurveP, [FloatP, FloatP, c_int64], _N),
    "nn_curve_free": (None, [CurveP], None),
    "nn_curve_size": (c_int64, [CurveP], None),
    "nn_curve_positives": (c_int64, [CurveP], None),
    "nn_curve_negatives": (c_int64, [CurveP], None),
    "nn_curve_roc": (c_int, [CurveP, DoubleP, DoubleP, FloatP, c_int64], _S),
    "nn_curve_pr": (c_int, [CurveP, DoubleP, DoubleP, FloatP, c_int64], _S),
    "nn_curve_roc_auc": (c_double, [CurveP], None),
    "nn_curve_average_precision": (c_double, [CurveP], None),
    "nn_curve_report": (c_int, [CurveP, c_float, _ReportP], _S),
    "nn_curve_threshold_for_recall": (c_int, [CurveP, c_double, _ReportP],
                                      _S),
    "nn_curve_threshold_for_precision": (c_int, [CurveP, c_double,
                                                 _ReportP], _S),
    "nn_model_evaluate_binary": (c_int, [ModelP, TensorP, TensorP, c_int,
                                         ctypes.POINTER(nn_binary_opts),
                                         _ReportP, ctypes.POINTER(CurveP)],
                                 _S),
})


# ---- resource limits (what a file may make libnn allocate)
class nn_limits(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("model_bytes", c_int64),
                ("data_bytes", c_int64)]


DEFAULT_MODEL_BYTES = DEFAULT_DATA_BYTES = 1 << 31
_DEFAULTS[nn_limits] = dict(model_bytes=0, data_bytes=0)
_SIGNATURES.update({
    "nn_set_limits": (c_int, [ctypes.POINTER(nn_limits)], _S),
    "nn_get_limits": (c_int, [ctypes.POINTER(nn_limits)], _S),
})


# ---- additions for new users: a model's optimizer and loss
_SIGNATURES.update({
    # NULL (no optimizer) is an answer here: the caller checks.
    "nn_model_optimizer": (OptimizerP, [ModelP], None),
    "nn_optimizer_learning_rate": (c_float, [OptimizerP], None),
    # the number of terms, or a negative status: the caller checks
    "nn_model_loss": (c_int, [ModelP, IntP, FloatP, c_int,
                              ctypes.POINTER(nn_loss_opts)], None),
})


# ------------------------------------------------ data-parallel training
STATE_ALL, STATE_TRAINABLE, STATE_STATISTICS = 0, 1, 2
SYNC_START, SYNC_EPOCH_END = 0, 1


class nn_grad_info(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("step", c_int64), ("samples", c_int64),
                ("total_samples", c_int64)]


nn_grad_hook_fn = ctypes.CFUNCTYPE(c_int, FloatP, c_int64,
                                   ctypes.POINTER(nn_grad_info), c_void_p)
_SIGNATURES.update({
    "nn_model_state_size": (c_int64, [ModelP, c_int], None),
    "nn_model_get_state": (c_int, [ModelP, c_int, FloatP, c_int64], _S),
    "nn_model_set_state": (c_int, [ModelP, c_int, FloatP, c_int64], _S),
    "nn_model_set_grad_hook": (c_int, [ModelP, nn_grad_hook_fn, c_void_p],
                               _S),
    "nn_set_error": (c_int, [c_int, c_char_p], None),
})


# ---- inference for a product (docs/inference.md)
CHANNELS_AS_MODEL, CHANNELS_REVERSED = 0, 1


class nn_preprocess_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("scale", c_float),
                ("mean", c_float * 4), ("std", c_float * 4),
                ("channel_order", c_int), ("resize", c_int),
                ("positive_class", c_int), ("threshold", c_float),
                ("reserved", c_int)]


class nn_verdict(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("probs", FloatP),
                ("num_probs", c_int), ("predicted_class", c_int),
                ("score", c_float), ("defective", c_int)]


_DEFAULTS[nn_preprocess_opts] = dict(scale=1.0 / 255.0,
                                     mean=(c_float * 4)(0, 0, 0, 0),
                                     std=(c_float * 4)(1, 1, 1, 1),
                                     channel_order=CHANNELS_AS_MODEL,
                                     resize=0, positive_class=1,
                                     threshold=0.5, reserved=0)
_PrepP = ctypes.POINTER(nn_preprocess_opts)
_VerdictP = ctypes.POINTER(nn_verdict)
_SIGNATURES.update({
    "nn_model_set_preprocess": (c_int, [ModelP, _PrepP], _S),
    # NN_ERR_STATE (none stored) is an answer, not a failure: the caller
    # checks it.
    "nn_model_get_preprocess": (c_int, [ModelP, _PrepP], None),
    "nn_context_classify_u8": (c_int, [ContextP, c_void_p, c_int, c_int,
                                       c_int, c_size_t, _VerdictP], _S),
    "nn_context_classify_u8_batch": (c_int, [ContextP,
                                             ctypes.POINTER(c_void_p), c_int,
                                             c_int, c_int, c_int, c_size_t,
                                             _VerdictP], _S),
    "nn_context_classify": (c_int, [ContextP, TensorP, _VerdictP], _S),
})

missing = []
for _name, (_res, _args, _check) in _SIGNATURES.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        missing.append(_name)
        continue
    _f.restype = _res
    _f.argtypes = _args
    if _check == _S:
        _f.errcheck = _check_status
    elif _check == _N:
        _f.errcheck = _check_nonnull

if missing:
    raise ImportError(f"libnn: {path} lacks {', '.join(missing)} "
                      "(a library older than this binding?)")


def encode(s):
    """A Python str (or None) as a C string argument."""
    if s is None:
        return None
    if not isinstance(s, str):
        raise errors.wrong_type(f"expected a str, got {type(s).__name__}")
    return s.encode("utf-8")


def decode(b):
    return b.decode("utf-8", "replace") if b is not None else None
