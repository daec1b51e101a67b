/* Writes the synthetic surface-defect data set as PNG files and a manifest,
 * so it can be looked at, and replaced by a user's own data in the same
 * layout:
 *   DIR/images/00000.png   the surface (RGB, or gray with --channels 1)
 *   DIR/masks/00000.png    palette PNG: index = class id (0 none, 1 defect,
 *                          or the defect kind with --typed-masks 1)
 *   DIR/manifest.csv       id,image_path,mask_path,defect
 * nn_seg_load_manifest reads it back (the extra column is ignored).
 *
 *   make_defects --out DIR [--n 200] [--size 128] [--seed 0]
 *                [--channels 3] [--defect-fraction 0.5] [--typed-masks 0] */
#include "common.h"

#include <errno.h>
#include <sys/stat.h>

static const ex_program PROGRAM = {
    "make_defects",
    "Writes the seeded synthetic surface-defect data set (textured metal,\n"
    "fabric, painted and cast surfaces with scratches, pits, cracks and\n"
    "stains) as PNG images, masks and a manifest.csv that\n"
    "nn_seg_load_manifest and the segmentation example read."};

static void fail(const char *what)
{
    fprintf(stderr, "make_defects: %s: %s\n", what, nn_last_error());
    exit(1);
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_defects: cannot create '%s': %s\n", path,
                strerror(errno));
        exit(1);
    }
}

static void parse(int argc, char **argv, nn_defects_opts *o, const char **out)
{
    int size = o->height, typed = o->typed_masks;
    unsigned long long seed = o->seed;
    const ex_option opts[] = {
        EX_STRING("out", out, "DIR", "write the data set into DIR (created)",
                  "required"),
        EX_INT("n", &o->count, 1, 1000000, "N", "number of images"),
        EX_INT("size", &size, 16, 4096, "PIXELS", "image height and width"),
        EX_SEED("seed", &seed, "seed of the generator"),
        EX_INT("channels", &o->channels, 1, 3, "C", "3 (RGB) or 1 (gray)"),
        EX_FLOAT("defect-fraction", &o->defect_fraction, 0, 1, "F",
                 "share of the images that carry a defect"),
        EX_INT("typed-masks", &typed, 0, 1, "0|1",
               "1: masks hold the defect kind instead of 1"),
    };
    ex_parse(argc, argv, &PROGRAM, opts, EX_COUNT(opts));
    if (!*out) ex_usage_error(&PROGRAM, "--out DIR is required");
    if (o->channels == 2)
        ex_usage_error(&PROGRAM, "invalid --channels 2: expected 1 or 3");
    o->height = o->width = size;
    o->typed_masks = typed;
    o->seed = seed;
}

/* The manifest, written beside its final name and renamed over it. */
static void write_manifest(const char *dir, const nn_tensor *labels, int n)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/manifest.csv", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        exit(1);
    }
    const float *kind = nn_tensor_data_const(labels);
    fprintf(f, "id,image_path,mask_path,defect\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%05d,images/%05d.png,masks/%05d.png,%s\n", i, i, i,
                nn_defect_name((int)kind[i]));
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    nn_defects_opts o = NN_DEFECTS_OPTS_INIT;
    o.count = 200;
    const char *out = NULL;
    parse(argc, argv, &o, &out);
    nn_tensor *images, *masks, *labels;
    if (nn_synthetic_defects(&o, &images, &masks, &labels) != NN_OK)
        fail("generating the data set");
    char dir[4096], path[4200];
    make_dir(out);
    snprintf(dir, sizeof dir, "%s/images", out);
    make_dir(dir);
    snprintf(dir, sizeof dir, "%s/masks", out);
    make_dir(dir);
    for (int i = 0; i < o.count; i++) {
        snprintf(path, sizeof path, "%s/images/%05d.png", out, i);
        if (nn_image_save_png(path, images, i) != NN_OK) fail(path);
        snprintf(path, sizeof path, "%s/masks/%05d.png", out, i);
        if (nn_mask_save_png(path, masks, i) != NN_OK) fail(path);
    }
    write_manifest(out, labels, o.count);
    int defective = 0;
    for (int i = 0; i < o.count; i++)
        defective += nn_tensor_data(labels)[i] != 0.0f;
    printf("%d images of %dx%d (%d with a defect) in %s; manifest %s/"
           "manifest.csv\n",
           o.count, o.height, o.width, defective, out, out);
    nn_tensor_free(images);
    nn_tensor_free(masks);
    nn_tensor_free(labels);
    return 0;
}
