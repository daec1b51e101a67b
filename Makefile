# libnn build. `make` builds lib/libnn.so, lib/libnn.a and the examples.
# `make check` installs missing Debian packages (as root) and runs every test.
# `make demo` does the same set-up and trains the assignment's CNN.

PREFIX    ?= /usr/local
CC        ?= cc
PYTHON    ?= /usr/bin/python3
SANITIZE  ?=
OPT       ?= -O3
OPENMP    ?= -fopenmp

# The version lives in include/nn.h alone.
nn_version_part = $(shell sed -n 's/^\#define NN_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' include/nn.h)
VERSION_MAJOR := $(call nn_version_part,MAJOR)
VERSION       := $(VERSION_MAJOR).$(call nn_version_part,MINOR).$(call nn_version_part,PATCH)

BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(OPENMP) $(SANITIZE) $(BLAS_CFLAGS) -Iinclude -Isrc
LIB_CFLAGS = $(ALL_CFLAGS) -fPIC -fvisibility=hidden -DNN_BUILDING
LIBS     := $(BLAS_LIBS) -lpng -lz -lm $(OPENMP)

BUILD    ?= build
LIBDIR   ?= lib
SRC      := $(sort $(wildcard src/*/*.c))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o)
HDR      := include/nn.h src/nn_internal.h $(wildcard src/*/*.h)

EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
# Each fuzz target's seeds and every input that ever crashed it, as cmocka
# tests built with the normal compiler (tests/fuzz/driver.c).
FUZZ_TARGETS := checkpoint safetensors idx cifar
FUZZ_REGRESS := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz_regress_%)
TESTS    += $(FUZZ_REGRESS)
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

.PHONY: all lib examples tests check check-c check-python asan tsan fuzz demo deps install uninstall bench profile seg-kernels-bench clean
all: lib examples

lib: $(LIBDIR)/libnn.so $(LIBDIR)/libnn.a

$(BUILD)/obj/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(LIBDIR)/libnn.so.$(VERSION): $(OBJ) src/libnn.map
	@mkdir -p $(LIBDIR)
	$(CC) -shared -Wl,-soname,libnn.so.$(VERSION_MAJOR) -Wl,--version-script=src/libnn.map \
	  -Wl,--no-undefined $(SANITIZE) -o $@ $(OBJ) $(LIBS)

$(LIBDIR)/libnn.so: $(LIBDIR)/libnn.so.$(VERSION)
	ln -sf libnn.so.$(VERSION) $(LIBDIR)/libnn.so.$(VERSION_MAJOR)
	ln -sf libnn.so.$(VERSION_MAJOR) $(LIBDIR)/libnn.so

$(LIBDIR)/libnn.a: $(OBJ)
	@mkdir -p $(LIBDIR)
	rm -f $@ && ar rcs $@ $(OBJ)

# Examples and tests link the shared library, as users do.
RPATH := -Wl,-rpath,$(abspath $(LIBDIR))
$(BUILD)/examples/%: examples/%.c $(LIBDIR)/libnn.so $(wildcard examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ -L$(LIBDIR) -lnn $(RPATH) -lm

examples: $(EXAMPLES)

# Tests link the static library so they can reach internal kernels too.
$(BUILD)/tests/%: tests/%.c $(LIBDIR)/libnn.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LIBDIR)/libnn.a $(LIBS) -lcmocka -lpthread

tests: $(TESTS)

$(BUILD)/tests/fuzz_regress_%: tests/fuzz/fuzz_%.c tests/fuzz/driver.c $(wildcard tests/fuzz/*.h) $(LIBDIR)/libnn.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DFUZZ_ROOT='"$(CURDIR)/tests/fuzz"' -DFUZZ_TARGET='"$*"' \
	  tests/fuzz/driver.c $< -o $@ $(LIBDIR)/libnn.a $(LIBS) -lcmocka

# Regenerates the seed corpora, tests/fuzz/corpus/ (committed).
.PHONY: fuzz-seeds
fuzz-seeds: $(BUILD)/tests/make_seeds
	rm -rf tests/fuzz/corpus
	$(BUILD)/tests/make_seeds tests/fuzz/corpus

$(BUILD)/tests/make_seeds: tests/fuzz/make_seeds.c tests/fuzz/st_models.h $(LIBDIR)/libnn.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LIBDIR)/libnn.a $(LIBS)

$(BUILD)/bench/%: bench/%.c $(LIBDIR)/libnn.so
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ -L$(LIBDIR) -lnn $(RPATH) -lm

# A per-layer profile of ResNet50 inference (internal, so libnn.a).
$(BUILD)/bench/profile/layer_profile: bench/profile/layer_profile.c $(LIBDIR)/libnn.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LIBDIR)/libnn.a $(LIBS)

profile: $(BUILD)/bench/profile/layer_profile
	$(BUILD)/bench/profile/layer_profile --layers

# Micro-benchmark of the depthwise and transposed convolution kernels
# (internal, so libnn.a; not part of `make bench`).
$(BUILD)/bench/kernels/seg_kernels_bench: bench/kernels/seg_kernels_bench.c $(LIBDIR)/libnn.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LIBDIR)/libnn.a $(LIBS)

seg-kernels-bench: $(BUILD)/bench/kernels/seg_kernels_bench
	$(BUILD)/bench/kernels/seg_kernels_bench

# ---- set-up: install what is missing from Debian's archive ----
# clang, libclang-rt-14-dev (libFuzzer and the sanitizer runtimes) and
# libomp-14-dev (clang's OpenMP) build the fuzz targets; abigail-tools
# checks the ABI against 0.1.0.
DEB_PKGS := gcc make pkg-config libopenblas-dev libcmocka-dev zlib1g-dev \
            libpng-dev dataset-fashion-mnist python3-torch python3-numpy \
            python3-pytest python3-matplotlib binutils clang \
            libclang-rt-14-dev libomp-14-dev abigail-tools
deps:
	@scripts/deps.sh $(DEB_PKGS)

# ---- the README's two commands ----
check: deps
	$(MAKE) all tests
	$(MAKE) check-c check-python asan tsan fuzz

check-c: tests lib examples
	@scripts/run-tests.sh $(TESTS)
	@scripts/check-abi.sh $(LIBDIR)/libnn.so
	@scripts/check-deps.sh $(BUILD)
	@scripts/check-abidiff.sh $(LIBDIR)/libnn.so
	@scripts/check-install.sh
	@scripts/check-examples.sh $(BUILD)/examples

check-python: lib
	@LIBDIR=$(LIBDIR) scripts/run-pytest.sh

# Tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build-asan LIBDIR=build-asan/lib OPT=-O1 \
	  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  build-asan/tests-run

build-asan/tests-run: $(TESTS)
	@ASAN_OPTIONS=detect_leaks=1 scripts/run-tests.sh $(TESTS)

# The thread tests under ThreadSanitizer, with OpenMP off in this build
# (-fopenmp-simd keeps only the vector hints). libgomp is not built with
# TSan: the hand-offs inside its thread pool are invisible to it, so every
# parallel loop would be reported as racing with itself. The races that
# matter here are between the caller's threads, which run the same library
# code with or without OpenMP. omp_get_thread_num() and friends still link
# (-lgomp) and answer as outside a parallel region.
TSAN_OPENMP := -fopenmp-simd -lgomp -Wno-unknown-pragmas \
               -Wno-unused-variable -Wno-unused-but-set-variable \
               -Wno-unused-function
tsan:
	$(MAKE) BUILD=build-tsan LIBDIR=build-tsan/lib OPT=-O1 OPENMP="$(TSAN_OPENMP)" \
	  SANITIZE="-fsanitize=thread" build-tsan/tests-run

build-tsan/tests-run: $(BUILD)/tests/test_threads
	@TSAN_OPTIONS="halt_on_error=1 history_size=4" scripts/run-tests.sh $^

# ---- fuzzing (tests/fuzz/): libFuzzer, Debian's clang ----
# Every reader under libFuzzer, ASan and UBSan, FUZZ_SECONDS each; the
# library is built with clang here, so the AVX-512 kernel runs under the
# sanitizers too (the targets check it is built in where the CPU has it).
# A crash leaves its input in build-fuzz/crashes/<target>/: keep it in
# tests/fuzz/regressions/<target>/ and fix the defect.
FUZZ_SECONDS ?= 30
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz LIBDIR=build-fuzz/lib OPT="-O1" \
	  WARN="$(WARN) -Wno-pass-failed" SANITIZE="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(LIBDIR)/libnn.a
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer $< -o $@ $(LIBDIR)/libnn.a $(LIBS)


# Writes its history into the build directory: $(BUILD)/cifar_cnn_history.csv
demo: deps
	$(MAKE) all
	$(BUILD)/examples/cifar_cnn --history $(BUILD)/cifar_cnn_history.csv

# Q1: plain-20/56 against ResNet-20/56 (examples/residual_vs_plain.c),
# then its plots, all into $(RESIDUAL_OUT); longer runs:
# make residual-experiment RESIDUAL_ARGS="--train 12000 --epochs 8"
RESIDUAL_OUT ?= $(BUILD)/residual_out
RESIDUAL_ARGS ?=
.PHONY: residual-experiment
residual-experiment: lib $(BUILD)/examples/residual_vs_plain
	$(BUILD)/examples/residual_vs_plain --out $(RESIDUAL_OUT) $(RESIDUAL_ARGS)
	$(PYTHON) tools/plot_residual.py $(RESIDUAL_OUT)

bench: lib $(BENCHES)
	@scripts/run-bench.sh

# ---- Q3c: training curves with and without augmentation ----
# Trains cifar_cnn (Q3a) and cifar_augment (Q3b) on the default data
# (Fashion-MNIST; CIFAR-10 with CURVES_ARGS="--data DIR") and plots both
# histories side by side, into $(CURVES_DIR) (the CSVs and curves.png).
# A shorter run: make curves EPOCHS=3 CURVES_ARGS="--train 10000".
# make curves-docs runs it and copies the figure over the committed
# docs/curves.png (the README's: the defaults, 10 epochs, seed 42).
EPOCHS      ?= 10
CURVES_ARGS ?=
CURVES_DIR  ?= $(BUILD)/curves
.PHONY: curves curves-docs
curves: $(BUILD)/examples/cifar_cnn $(BUILD)/examples/cifar_augment
	@mkdir -p $(CURVES_DIR)
	$(BUILD)/examples/cifar_cnn --epochs $(EPOCHS) $(CURVES_ARGS) --history $(CURVES_DIR)/cnn.csv
	$(BUILD)/examples/cifar_augment --epochs $(EPOCHS) $(CURVES_ARGS) --history $(CURVES_DIR)/augment.csv
	$(PYTHON) tools/plot_history.py $(CURVES_DIR)/cnn.csv $(CURVES_DIR)/augment.csv \
	  --labels "Q3a: no augmentation" "Q3b: RandomFlip + RandomRotation(0.2)" \
	  --title "Q3c: train vs validation" -o $(CURVES_DIR)/curves.png

curves-docs: curves
	cp $(CURVES_DIR)/curves.png docs/curves.png
	@echo "docs/curves.png refreshed from $(CURVES_DIR)/curves.png"

# ---- install ----
install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/nn.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(LIBDIR)/libnn.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libnn.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libnn.so.$(VERSION_MAJOR)
	ln -sf libnn.so.$(VERSION_MAJOR) $(DESTDIR)$(PREFIX)/lib/libnn.so
	install -m 644 $(LIBDIR)/libnn.a $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	  -e 's|@BLAS_LIBS@|$(BLAS_LIBS)|' nn.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nn.pc
	@echo "libnn $(VERSION) installed in $(DESTDIR)$(PREFIX). Build a program with"
	@echo "  cc prog.c \$$(PKG_CONFIG_PATH=$(PREFIX)/lib/pkgconfig pkg-config --cflags --libs nn) -Wl,-rpath,$(PREFIX)/lib"
	@echo "(the rpath lets it find libnn.so.$(VERSION_MAJOR) at run time; or set LD_LIBRARY_PATH=$(PREFIX)/lib,"
	@echo "or run ldconfig once if $(PREFIX)/lib is listed in /etc/ld.so.conf.d)."

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/nn.h $(DESTDIR)$(PREFIX)/lib/libnn.* \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/nn.pc

clean:
	rm -rf build build-asan build-tsan build-fuzz lib/libnn.*
