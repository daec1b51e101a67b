/* Versioned options structs: the one place that reads a caller's `size`.
 *
 * Every options struct in nn.h starts with `size_t size` and only ever
 * grows at the end, so a program built against another header passes a
 * struct of another size. As Linux's copy_struct_from_user does for its
 * extensible structs, we take what both sides know and refuse what only
 * the caller knows unless it is zero (an option left at its default).
 *
 * A shorter struct is cut at a member boundary, never inside a member, so
 * each struct's member ends are listed below. A static_assert per struct
 * fails when a member is appended to nn.h without its line here.
 *
 * Trailing padding: seven structs (conv2d, pool2d, resizing, augment, loss,
 * adam, sgd) end in 4 bytes of padding, and fit_opts has 4 inside, that a
 * caller's INIT macro may leave uninitialised. They are never read as an
 * option. A 4-byte member appended to one of those structs would sit in
 * that padding and read an older caller's garbage; such a member must come
 * after an explicit 4-byte reserved member, so that sizeof grows. */
#include "nn_internal.h"

#include <assert.h>
#include <string.h>

#define END(T, m) (offsetof(T, m) + sizeof(((T *)0)->m))

/* `last` is the struct's last member: the struct ends at its end, give or
 * take the padding up to the alignment. */
#define COMPLETE(T, last)                                                      \
    static_assert((END(T, last) + _Alignof(T) - 1) / _Alignof(T) *             \
                          _Alignof(T) ==                                       \
                      sizeof(T),                                               \
                  #T ": a member after " #last " needs its line here")

static const size_t layer_ends[] = {END(nn_layer_opts, name)};
COMPLETE(nn_layer_opts, name);

static const size_t conv2d_ends[] = {
    END(nn_conv2d_opts, name),       END(nn_conv2d_opts, stride_h),
    END(nn_conv2d_opts, stride_w),   END(nn_conv2d_opts, padding),
    END(nn_conv2d_opts, use_bias),   END(nn_conv2d_opts, activation),
    END(nn_conv2d_opts, kernel_init), END(nn_conv2d_opts, bias_init)};
COMPLETE(nn_conv2d_opts, bias_init);

static const size_t pool2d_ends[] = {
    END(nn_pool2d_opts, name), END(nn_pool2d_opts, stride_h),
    END(nn_pool2d_opts, stride_w), END(nn_pool2d_opts, padding)};
COMPLETE(nn_pool2d_opts, padding);

static const size_t dense_ends[] = {
    END(nn_dense_opts, name), END(nn_dense_opts, use_bias),
    END(nn_dense_opts, activation), END(nn_dense_opts, kernel_init),
    END(nn_dense_opts, bias_init)};
COMPLETE(nn_dense_opts, bias_init);

static const size_t batchnorm_ends[] = {
    END(nn_batchnorm_opts, name), END(nn_batchnorm_opts, momentum),
    END(nn_batchnorm_opts, epsilon), END(nn_batchnorm_opts, center),
    END(nn_batchnorm_opts, scale)};
COMPLETE(nn_batchnorm_opts, scale);

static const size_t resizing_ends[] = {END(nn_resizing_opts, name),
                                       END(nn_resizing_opts, interpolation)};
COMPLETE(nn_resizing_opts, interpolation);

static const size_t augment_ends[] = {
    END(nn_augment_opts, name), END(nn_augment_opts, fill_mode),
    END(nn_augment_opts, interpolation), END(nn_augment_opts, fill_value)};
COMPLETE(nn_augment_opts, fill_value);

static const size_t loss_ends[] = {
    END(nn_loss_opts, from_logits), END(nn_loss_opts, smooth),
    END(nn_loss_opts, eps), END(nn_loss_opts, reduction),
    END(nn_loss_opts, sparse_labels), END(nn_loss_opts, class_weights),
    END(nn_loss_opts, num_class_weights), END(nn_loss_opts, pos_weight),
    END(nn_loss_opts, weight_norm)};
COMPLETE(nn_loss_opts, weight_norm);

static const size_t adam_ends[] = {
    END(nn_adam_opts, learning_rate), END(nn_adam_opts, beta1),
    END(nn_adam_opts, beta2), END(nn_adam_opts, epsilon),
    END(nn_adam_opts, eps_mode)};
COMPLETE(nn_adam_opts, eps_mode);

static const size_t sgd_ends[] = {END(nn_sgd_opts, learning_rate),
                                  END(nn_sgd_opts, momentum),
                                  END(nn_sgd_opts, nesterov)};
COMPLETE(nn_sgd_opts, nesterov);

static const size_t fit_ends[] = {
    END(nn_fit_opts, epochs),           END(nn_fit_opts, batch_size),
    END(nn_fit_opts, shuffle),          END(nn_fit_opts, val_x),
    END(nn_fit_opts, val_y),            END(nn_fit_opts, progress),
    END(nn_fit_opts, user),             END(nn_fit_opts, record_grad_norm),
    END(nn_fit_opts, stop_on_nonfinite),
    END(nn_fit_opts, segmentation_metrics), END(nn_fit_opts, class_weight),
    END(nn_fit_opts, num_class_weight),  END(nn_fit_opts, sample_weight),
    END(nn_fit_opts, decision_metrics),  END(nn_fit_opts, sync),
    END(nn_fit_opts, sync_user),         END(nn_fit_opts, rank),
    END(nn_fit_opts, world_size)};
COMPLETE(nn_fit_opts, world_size);

static const size_t diag_ends[] = {
    END(nn_diag_opts, record),          END(nn_diag_opts, check_finite),
    END(nn_diag_opts, window),          END(nn_diag_opts, vanishing_ratio),
    END(nn_diag_opts, vanishing_floor), END(nn_diag_opts, exploding_ratio),
    END(nn_diag_opts, exploding_ceiling),
    END(nn_diag_opts, exploding_growth)};
COMPLETE(nn_diag_opts, exploding_growth);

static const size_t resnet_ends[] = {
    END(nn_resnet_opts, name), END(nn_resnet_opts, flavor),
    END(nn_resnet_opts, include_top), END(nn_resnet_opts, classes),
    END(nn_resnet_opts, classifier_activation)};
COMPLETE(nn_resnet_opts, classifier_activation);

static const size_t image_ends[] = {
    END(nn_image_opts, height), END(nn_image_opts, width),
    END(nn_image_opts, max_values), END(nn_image_opts, mask_mode),
    END(nn_image_opts, num_classes)};
COMPLETE(nn_image_opts, num_classes);

static const size_t pixels_ends[] = {
    END(nn_pixels_opts, stride), END(nn_pixels_opts, scale),
    END(nn_pixels_opts, mean), END(nn_pixels_opts, std)};
COMPLETE(nn_pixels_opts, std);

static const size_t defects_ends[] = {
    END(nn_defects_opts, count), END(nn_defects_opts, height),
    END(nn_defects_opts, width), END(nn_defects_opts, channels),
    END(nn_defects_opts, defect_fraction), END(nn_defects_opts, typed_masks),
    END(nn_defects_opts, seed)};
COMPLETE(nn_defects_opts, seed);

static const size_t binary_ends[] = {END(nn_binary_opts, positive_class),
                                     END(nn_binary_opts, threshold)};
COMPLETE(nn_binary_opts, threshold);

static const size_t limits_ends[] = {END(nn_limits, model_bytes),
                                     END(nn_limits, data_bytes)};
COMPLETE(nn_limits, data_bytes);

static const size_t report_ends[] = {
    END(nn_binary_report, threshold), END(nn_binary_report, tp),
    END(nn_binary_report, fp),        END(nn_binary_report, tn),
    END(nn_binary_report, fn),        END(nn_binary_report, precision),
    END(nn_binary_report, recall),    END(nn_binary_report, f1),
    END(nn_binary_report, accuracy),  END(nn_binary_report, roc_auc),
    END(nn_binary_report, average_precision)};
COMPLETE(nn_binary_report, average_precision);

static const size_t depthwise_conv2d_ends[] = {
    END(nn_depthwise_conv2d_opts, name),
    END(nn_depthwise_conv2d_opts, stride_h),
    END(nn_depthwise_conv2d_opts, stride_w),
    END(nn_depthwise_conv2d_opts, padding),
    END(nn_depthwise_conv2d_opts, depth_multiplier),
    END(nn_depthwise_conv2d_opts, use_bias),
    END(nn_depthwise_conv2d_opts, activation),
    END(nn_depthwise_conv2d_opts, kernel_init),
    END(nn_depthwise_conv2d_opts, bias_init),
    END(nn_depthwise_conv2d_opts, kernel_init_stddev),
    END(nn_depthwise_conv2d_opts, bias_init_stddev)};
COMPLETE(nn_depthwise_conv2d_opts, bias_init_stddev);

static const size_t conv2d_transpose_ends[] = {
    END(nn_conv2d_transpose_opts, name),
    END(nn_conv2d_transpose_opts, stride_h),
    END(nn_conv2d_transpose_opts, stride_w),
    END(nn_conv2d_transpose_opts, padding),
    END(nn_conv2d_transpose_opts, output_padding_h),
    END(nn_conv2d_transpose_opts, output_padding_w),
    END(nn_conv2d_transpose_opts, use_bias),
    END(nn_conv2d_transpose_opts, activation),
    END(nn_conv2d_transpose_opts, kernel_init),
    END(nn_conv2d_transpose_opts, bias_init),
    END(nn_conv2d_transpose_opts, reserved),
    END(nn_conv2d_transpose_opts, kernel_init_stddev),
    END(nn_conv2d_transpose_opts, bias_init_stddev)};
COMPLETE(nn_conv2d_transpose_opts, bias_init_stddev);

static const size_t upsampling2d_ends[] = {
    END(nn_upsampling2d_opts, name), END(nn_upsampling2d_opts, interpolation),
    END(nn_upsampling2d_opts, reserved)};
COMPLETE(nn_upsampling2d_opts, reserved);

static const size_t separable_conv2d_ends[] = {
    END(nn_separable_conv2d_opts, name),
    END(nn_separable_conv2d_opts, stride_h),
    END(nn_separable_conv2d_opts, stride_w),
    END(nn_separable_conv2d_opts, padding),
    END(nn_separable_conv2d_opts, depth_multiplier),
    END(nn_separable_conv2d_opts, use_bias),
    END(nn_separable_conv2d_opts, activation),
    END(nn_separable_conv2d_opts, depthwise_init),
    END(nn_separable_conv2d_opts, pointwise_init),
    END(nn_separable_conv2d_opts, bias_init),
    END(nn_separable_conv2d_opts, depthwise_init_stddev),
    END(nn_separable_conv2d_opts, pointwise_init_stddev),
    END(nn_separable_conv2d_opts, bias_init_stddev)};
COMPLETE(nn_separable_conv2d_opts, bias_init_stddev);

static const size_t preprocess_ends[] = {
    END(nn_preprocess_opts, scale),
    END(nn_preprocess_opts, mean),
    END(nn_preprocess_opts, std),
    END(nn_preprocess_opts, channel_order),
    END(nn_preprocess_opts, resize),
    END(nn_preprocess_opts, positive_class),
    END(nn_preprocess_opts, threshold),
    END(nn_preprocess_opts, reserved)};
COMPLETE(nn_preprocess_opts, reserved);

static const size_t mobilenet_v2_ends[] = {
    END(nn_mobilenet_v2_opts, name), END(nn_mobilenet_v2_opts, flavor),
    END(nn_mobilenet_v2_opts, include_top),
    END(nn_mobilenet_v2_opts, classes),
    END(nn_mobilenet_v2_opts, classifier_activation),
    END(nn_mobilenet_v2_opts, alpha)};
COMPLETE(nn_mobilenet_v2_opts, alpha);

static const size_t unet_ends[] = {
    END(nn_unet_opts, name), END(nn_unet_opts, encoder_name),
    END(nn_unet_opts, freeze_encoder), END(nn_unet_opts, activation),
    END(nn_unet_opts, dropout), END(nn_unet_opts, bn_momentum)};
COMPLETE(nn_unet_opts, bn_momentum);

static const size_t prelu_ends[] = {
    END(nn_prelu_opts, name), END(nn_prelu_opts, shared_axes),
    END(nn_prelu_opts, alpha_init), END(nn_prelu_opts, alpha_init_value),
    END(nn_prelu_opts, reserved)};
COMPLETE(nn_prelu_opts, reserved);

typedef struct layout {
    const char *type, *init; /* for messages */
    size_t size;             /* sizeof the struct this library knows */
    const size_t *ends;      /* where each member after `size` ends */
    size_t n;
} layout;

#define ROW(T, init, ends) {#T, init, sizeof(T), ends, sizeof ends / sizeof *ends}

static const layout layouts[NN_OPTS_KIND_COUNT] = {
    [NN_OPTS_LAYER] = ROW(nn_layer_opts, "NN_LAYER_OPTS_INIT", layer_ends),
    [NN_OPTS_CONV2D] = ROW(nn_conv2d_opts, "NN_CONV2D_OPTS_INIT", conv2d_ends),
    [NN_OPTS_POOL2D] = ROW(nn_pool2d_opts, "NN_POOL2D_OPTS_INIT", pool2d_ends),
    [NN_OPTS_DENSE] = ROW(nn_dense_opts, "NN_DENSE_OPTS_INIT", dense_ends),
    [NN_OPTS_BATCHNORM] = ROW(nn_batchnorm_opts, "NN_BATCHNORM_OPTS_INIT",
                              batchnorm_ends),
    [NN_OPTS_RESIZING] = ROW(nn_resizing_opts, "NN_RESIZING_OPTS_INIT",
                             resizing_ends),
    [NN_OPTS_AUGMENT] = ROW(nn_augment_opts, "NN_AUGMENT_OPTS_INIT",
                            augment_ends),
    [NN_OPTS_LOSS] = ROW(nn_loss_opts, "NN_LOSS_OPTS_INIT", loss_ends),
    [NN_OPTS_ADAM] = ROW(nn_adam_opts, "NN_ADAM_OPTS_INIT", adam_ends),
    [NN_OPTS_SGD] = ROW(nn_sgd_opts, "NN_SGD_OPTS_INIT", sgd_ends),
    [NN_OPTS_FIT] = ROW(nn_fit_opts, "NN_FIT_OPTS_INIT", fit_ends),
    [NN_OPTS_DIAG] = ROW(nn_diag_opts, "NN_DIAG_OPTS_INIT", diag_ends),
    [NN_OPTS_RESNET] = ROW(nn_resnet_opts, "NN_RESNET_OPTS_INIT", resnet_ends),
    [NN_OPTS_IMAGE] = ROW(nn_image_opts, "NN_IMAGE_OPTS_INIT", image_ends),
    [NN_OPTS_PIXELS] = ROW(nn_pixels_opts, "NN_PIXELS_OPTS_INIT", pixels_ends),
    [NN_OPTS_DEFECTS] = ROW(nn_defects_opts, "NN_DEFECTS_OPTS_INIT",
                            defects_ends),
    [NN_OPTS_BINARY] = ROW(nn_binary_opts, "NN_BINARY_OPTS_INIT", binary_ends),
    [NN_OPTS_LIMITS] = ROW(nn_limits, "NN_LIMITS_INIT", limits_ends),
    [NN_OPTS_BINARY_REPORT] = ROW(nn_binary_report,
                                  "sizeof(nn_binary_report)", report_ends),
    [NN_OPTS_DEPTHWISE_CONV2D] = ROW(nn_depthwise_conv2d_opts,
                                     "NN_DEPTHWISE_CONV2D_OPTS_INIT",
                                     depthwise_conv2d_ends),
    [NN_OPTS_CONV2D_TRANSPOSE] = ROW(nn_conv2d_transpose_opts,
                                     "NN_CONV2D_TRANSPOSE_OPTS_INIT",
                                     conv2d_transpose_ends),
    [NN_OPTS_UPSAMPLING2D] = ROW(nn_upsampling2d_opts,
                                 "NN_UPSAMPLING2D_OPTS_INIT",
                                 upsampling2d_ends),
    [NN_OPTS_SEPARABLE_CONV2D] = ROW(nn_separable_conv2d_opts,
                                     "NN_SEPARABLE_CONV2D_OPTS_INIT",
                                     separable_conv2d_ends),
    [NN_OPTS_PREPROCESS] = ROW(nn_preprocess_opts, "NN_PREPROCESS_OPTS_INIT",
                               preprocess_ends),
    [NN_OPTS_MOBILENET_V2] = ROW(nn_mobilenet_v2_opts,
                                 "NN_MOBILENET_V2_OPTS_INIT",
                                 mobilenet_v2_ends),
    [NN_OPTS_UNET] = ROW(nn_unet_opts, "NN_UNET_OPTS_INIT", unet_ends),
    [NN_OPTS_PRELU] = ROW(nn_prelu_opts, "NN_PRELU_OPTS_INIT", prelu_ends),
};

/* The end of the last member that lies wholly within `size` bytes. */
static size_t whole_members(const layout *l, size_t size)
{
    size_t end = sizeof(size_t);
    for (size_t i = 0; i < l->n && l->ends[i] <= size; i++) end = l->ends[i];
    return end;
}

/* Bytes this library does not know must be zero: a caller built against a
 * newer header that sets an option we lack would otherwise be ignored. */
static nn_status check_tail(const layout *l, const uint8_t *src, size_t size,
                            const char *fn)
{
    for (size_t i = l->size; i < size; i++)
        NN_CHECK(src[i] == 0, NN_ERR_INVALID,
                 "%s: the options set byte %zu, but %s has %zu bytes in this "
                 "libnn (%s): that option needs a newer libnn; leave it at "
                 "its default (zero) to run with this one",
                 fn, i, l->type, l->size, nn_version());
    return NN_OK;
}

nn_status nn__read_opts_as(void *dst, const void *src, nn_opts_kind kind,
                           const char *fn)
{
    const layout *l = &layouts[kind];
    memcpy(dst, &l->size, sizeof l->size);
    if (!src) return NN_OK;
    size_t size;
    memcpy(&size, src, sizeof size);
    NN_CHECK(size >= sizeof(size_t), NN_ERR_INVALID,
             "%s: opts->size is %zu, less than the size member itself; "
             "initialise the options with %s",
             fn, size, l->init);
    NN_CHECK(size <= NN_OPTS_MAX_SIZE, NN_ERR_INVALID,
             "%s: opts->size is %zu, not the size of an options struct; "
             "initialise the options with %s",
             fn, size, l->init);
    NN_TRY(check_tail(l, src, size, fn));
    size_t n = whole_members(l, size < l->size ? size : l->size);
    memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
           n - sizeof(size_t));
    return NN_OK;
}

nn_status nn__write_opts_as(void *dst, const void *src, nn_opts_kind kind,
                            const char *fn)
{
    const layout *l = &layouts[kind];
    NN_CHECK(dst, NN_ERR_INVALID, "%s: NULL %s", fn, l->type);
    size_t size;
    memcpy(&size, dst, sizeof size);
    NN_CHECK(size >= sizeof(size_t) && size <= NN_OPTS_MAX_SIZE,
             NN_ERR_INVALID,
             "%s: the %s's size is %zu, not the size of that struct; "
             "initialise it with %s",
             fn, l->type, size, l->init);
    size_t n = whole_members(l, size < l->size ? size : l->size);
    memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
           n - sizeof(size_t));
    return NN_OK;
}
