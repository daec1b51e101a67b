/* Fuzz target: the segmentation manifest reader (nn_seg_load_manifest).
 * The input is the CSV text; beside it lie two small valid images and
 * masks (a.png, b.png, ma.png, mb.png), so rows naming them load and rows
 * naming anything else fail. A loaded set must be images [N, 8, 8, 3] in
 * [0, 1] and masks [N, 8, 8, 1] of class ids. */
#include "fuzz.h"

static void write_pair(const char *image, const char *mask, float v)
{
    int64_t is[3] = {6, 5, 3}, ms[3] = {6, 5, 1};
    nn_tensor *im = nn_tensor_create(3, is), *m = nn_tensor_create(3, ms);
    FUZZ_CHECK(im && m, "tensors");
    for (int64_t i = 0; i < im->size; i++) im->data[i] = v;
    for (int64_t i = 0; i < m->size; i++) m->data[i] = (float)(i % 2);
    FUZZ_CHECK(nn_image_save_png(fuzz_path(image), im, 0) == NN_OK &&
                   nn_mask_save_png(fuzz_path(mask), m, 0) == NN_OK,
               "writing the fixture images");
    nn_tensor_free(im);
    nn_tensor_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    static bool fixtures;
    if (!fixtures) {
        write_pair("a.png", "ma.png", 0.25f);
        write_pair("b.png", "mb.png", 0.75f);
        fixtures = true;
    }
    const char *path = fuzz_path("manifest.csv");
    fuzz_write(path, data, size);
    nn_image_opts o = NN_IMAGE_OPTS_INIT;
    o.height = o.width = 8;
    nn_tensor *x = NULL, *y = NULL;
    nn_status s = nn_seg_load_manifest(path, 3, &o, &x, &y);
    if (s != NN_OK) {
        FUZZ_CHECK(!x && !y, "a failed load returned tensors");
        fuzz_check_failure(s, "nn_seg_load_manifest");
        return 0;
    }
    FUZZ_CHECK(x->rank == 4 && y->rank == 4 && x->shape[0] == y->shape[0] &&
                   x->shape[1] == 8 && x->shape[2] == 8 && x->shape[3] == 3 &&
                   y->shape[3] == 1,
               "shapes");
    for (int64_t i = 0; i < x->size; i++)
        FUZZ_CHECK(x->data[i] >= 0 && x->data[i] <= 1, "image value");
    for (int64_t i = 0; i < y->size; i++)
        FUZZ_CHECK(y->data[i] == 0 || y->data[i] == 1, "mask value");
    nn_tensor_free(x);
    nn_tensor_free(y);
    return 0;
}
