/* Runs a fuzz target (linked in beside this file) on every file of its
 * seed corpus, tests/fuzz/corpus/<target>/, and of its crash regressions,
 * tests/fuzz/regressions/<target>/: one cmocka test per file. Built with
 * the normal compiler, and under ASan by `make asan`, so every input that
 * ever crashed stays a test without libFuzzer. FUZZ_ROOT and FUZZ_TARGET
 * come from the Makefile. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run_file(void **state)
{
    const char *path = *state;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
        assert_non_null(buf);
    }
    fclose(f);
    /* A copy of exactly n bytes, so ASan sees reads past the input. */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    assert_int_equal(LLVMFuzzerTestOneInput(exact, n), 0);
    free(exact);
}

typedef struct list {
    struct CMUnitTest *t;
    int n, cap;
} list;

static void add_dir(list *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README")) continue;
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 64;
            l->t = realloc(l->t, (size_t)l->cap * sizeof *l->t);
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        snprintf(path, len, "%s/%s", dir, e->d_name);
        l->t[l->n++] = (struct CMUnitTest){
            .name = path + strlen(FUZZ_ROOT) + 1,
            .test_func = run_file,
            .initial_state = path,
        };
    }
    closedir(d);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct CMUnitTest *)a)->name,
                  ((const struct CMUnitTest *)b)->name);
}

int main(void)
{
    list l = {0};
    add_dir(&l, FUZZ_ROOT "/corpus/" FUZZ_TARGET);
    add_dir(&l, FUZZ_ROOT "/regressions/" FUZZ_TARGET);
    if (l.n == 0) {
        fprintf(stderr, "no inputs under " FUZZ_ROOT " for " FUZZ_TARGET "\n");
        return 1;
    }
    qsort(l.t, (size_t)l.n, sizeof *l.t, by_name);
    int failed = _cmocka_run_group_tests(FUZZ_TARGET, l.t, (size_t)l.n, NULL,
                                         NULL);
    for (int i = 0; i < l.n; i++) free((void *)l.t[i].initial_state);
    free(l.t);
    return failed;
}
