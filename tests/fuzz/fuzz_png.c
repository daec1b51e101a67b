/* Fuzz target: the PNG readers (nn_image_load, nn_mask_load; libpng
 * underneath). The first byte chooses the call: bit 0 a mask, else an
 * image; bit 1 three channels, else one; bit 2 a resize to 8 x 8; bit 3
 * binary masks (0/255). The rest is the file. A loaded tensor must have
 * the shape asked for and values the call promises. */
#include "fuzz.h"

static void check_image(const nn_tensor *t, int channels, bool resized)
{
    FUZZ_CHECK(t->rank == 3 && t->shape[2] == channels, "image shape");
    FUZZ_CHECK(!resized || (t->shape[0] == 8 && t->shape[1] == 8),
               "resized image shape");
    FUZZ_CHECK(t->shape[0] * t->shape[1] * channels == t->size,
               "shape and size disagree");
    for (int64_t i = 0; i < t->size; i++)
        FUZZ_CHECK(t->data[i] >= 0 && t->data[i] <= 1, "value %g",
                   (double)t->data[i]);
}

static void check_mask(const nn_tensor *t, const nn_image_opts *o)
{
    FUZZ_CHECK(t->rank == 3 && t->shape[2] == 1, "mask shape");
    for (int64_t i = 0; i < t->size; i++)
        FUZZ_CHECK(t->data[i] >= 0 && t->data[i] < o->num_classes &&
                       t->data[i] == (float)(int)t->data[i],
                   "mask value %g", (double)t->data[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size < 1) return 0;
    bool mask = data[0] & 1, rgb = data[0] & 2, resize = data[0] & 4;
    const char *path = fuzz_path("input.png");
    fuzz_write(path, data + 1, size - 1);
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.max_values = 1 << 20; /* a large declared size is refused, not read */
    o.num_classes = 256;
    if (data[0] & 8) {
        o.mask_mode = NN_MASK_BINARY;
        o.num_classes = 2;
    }
    if (resize) o.height = o.width = 8;
    nn_tensor *t = NULL;
    nn_status s = mask ? nn_mask_load(path, &o, &t)
                       : nn_image_load(path, rgb ? 3 : 1, &o, &t);
    if (s != NN_OK) {
        FUZZ_CHECK(!t, "a failed load returned a tensor");
        fuzz_check_failure(s, mask ? "nn_mask_load" : "nn_image_load");
        return 0;
    }
    if (mask)
        check_mask(t, &o);
    else
        check_image(t, rgb ? 3 : 1, resize);
    nn_tensor_free(t);
    return 0;
}
