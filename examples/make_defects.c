/* Writes the synthetic surface-defect data set as PNG files and a manifest,
 * so it can be looked at, and replaced by a user's own data in the same
 * layout:
 *   DIR/images/00000.png   the surface (RGB, or gray with --gray)
 *   DIR/masks/00000.png    palette PNG: index = class id (0 none, 1 defect,
 *                          or the defect kind with --typed-masks)
 *   DIR/manifest.csv       id,image_path,mask_path,defect
 * nn_seg_load_manifest reads it back (the extra column is ignored).
 *
 *   make_defects --out DIR [--n 200] [--size 128] [--seed 0] [--gray]
 *                [--defect-fraction 0.5] [--typed-masks] */
#include <nn.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: make_defects --out DIR [--n N] [--size PIXELS] "
            "[--seed S] [--gray] [--defect-fraction F] [--typed-masks]\n");
    exit(2);
}

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

static long number(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) usage();
    return v;
}

static void parse(int argc, char **argv, nn_defects_opts *o, const char **out)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--gray")) {
            o->channels = 1;
            continue;
        }
        if (!strcmp(a, "--typed-masks")) {
            o->typed_masks = 1;
            continue;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--out"))
            *out = v;
        else if (!strcmp(a, "--n"))
            o->count = (int)number(v, 1, 1000000);
        else if (!strcmp(a, "--size"))
            o->height = o->width = (int)number(v, 16, 4096);
        else if (!strcmp(a, "--seed"))
            o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--defect-fraction"))
            o->defect_fraction = strtof(v, NULL);
        else
            usage();
    }
    if (!*out) usage();
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
