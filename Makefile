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

EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(filter-out examples/mpi_%.c,$(wildcard examples/*.c)))
TOOLS    := $(patsubst tools/%.c,$(BUILD)/tools/%,$(wildcard tools/*.c))
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
# Each fuzz target's seeds and every input that ever crashed it, as cmocka
# tests built with the normal compiler (tests/fuzz/driver.c).
FUZZ_TARGETS := checkpoint safetensors idx cifar png manifest
FUZZ_REGRESS := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz_regress_%)
TESTS    += $(FUZZ_REGRESS)
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

# ---- libnn_mpi: data-parallel training over MPI (include/nn_mpi.h,
# docs/mpi.md), a library of its own, built when Open MPI is installed
# (MPI_PC=mpich for MPICH). It uses libnn's public API only.
MPI_PC     ?= ompi-c
HAVE_MPI   := $(shell pkg-config --exists $(MPI_PC) 2>/dev/null && echo 1)
MPI_CFLAGS := $(shell pkg-config --cflags $(MPI_PC) 2>/dev/null)
MPI_LDLIBS := $(shell pkg-config --libs $(MPI_PC) 2>/dev/null)
ifeq ($(HAVE_MPI),1)
MPI_LIB      := $(LIBDIR)/libnn_mpi.so
MPI_EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/mpi_*.c))
MPI_TESTS    := $(patsubst tests/mpi/%.c,$(BUILD)/tests/mpi/%,$(wildcard tests/mpi/test_*.c))
endif

.PHONY: all lib examples tests check check-c check-python check-mpi asan tsan fuzz tools demo deps install uninstall bench bench-mpi profile seg-kernels-bench clean
all: lib examples tools

lib: $(LIBDIR)/libnn.so $(LIBDIR)/libnn.a $(MPI_LIB)

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

# libnn_mpi (variables above).
MPI_LIB_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANITIZE) $(MPI_CFLAGS) \
                 -Iinclude -fPIC -fvisibility=hidden -DNN_MPI_BUILDING

$(BUILD)/obj-mpi/nn_mpi.o: mpi/nn_mpi.c include/nn_mpi.h include/nn.h
	@mkdir -p $(dir $@)
	$(CC) $(MPI_LIB_CFLAGS) -c $< -o $@

$(LIBDIR)/libnn_mpi.so.$(VERSION): $(BUILD)/obj-mpi/nn_mpi.o mpi/libnn_mpi.map $(LIBDIR)/libnn.so
	$(CC) -shared -Wl,-soname,libnn_mpi.so.$(VERSION_MAJOR) \
	  -Wl,--version-script=mpi/libnn_mpi.map -Wl,--no-undefined -Wl,-rpath,'$$ORIGIN' \
	  $(SANITIZE) -o $@ $< -L$(LIBDIR) -lnn $(MPI_LDLIBS)

$(LIBDIR)/libnn_mpi.so: $(LIBDIR)/libnn_mpi.so.$(VERSION)
	ln -sf libnn_mpi.so.$(VERSION) $(LIBDIR)/libnn_mpi.so.$(VERSION_MAJOR)
	ln -sf libnn_mpi.so.$(VERSION_MAJOR) $(LIBDIR)/libnn_mpi.so

# Examples and tests link the shared library, as users do.
RPATH := -Wl,-rpath,$(abspath $(LIBDIR))
$(BUILD)/examples/%: examples/%.c $(LIBDIR)/libnn.so $(wildcard examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ -L$(LIBDIR) -lnn $(RPATH) -lm

examples: $(EXAMPLES) $(MPI_EXAMPLES)

# MPI programs (examples/mpi_*.c, tests/mpi/) link libnn_mpi as well.
MPI_LINK = -L$(LIBDIR) -lnn_mpi -lnn $(MPI_LDLIBS) $(RPATH) -lm
$(BUILD)/examples/mpi_%: examples/mpi_%.c $(MPI_LIB) include/nn_mpi.h $(wildcard examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) $< -o $@ $(MPI_LINK)

$(BUILD)/tests/mpi/%: tests/mpi/%.c $(MPI_LIB) include/nn_mpi.h $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) $< -o $@ $(MPI_LINK)

$(BUILD)/bench/mpi/%: bench/mpi/%.c $(MPI_LIB) include/nn_mpi.h $(wildcard examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) $< -o $@ $(MPI_LINK)

# Tools installed with the library (nn-inspect) see only the public API:
# no -Isrc, so an internal header cannot slip in.
TOOL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANITIZE) -Iinclude
$(BUILD)/tools/%: tools/%.c $(LIBDIR)/libnn.so
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) $< -o $@ -L$(LIBDIR) -lnn $(RPATH) -lm -lpthread

tools: $(TOOLS)

# The model and images scripts/check-inspect.sh runs nn-inspect on,
# made through the public API as a user would make them.
INSPECT_FIXTURE := $(BUILD)/tests/inspect_fixture
$(INSPECT_FIXTURE): tests/inspect_fixture.c $(LIBDIR)/libnn.so
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) $< -o $@ -L$(LIBDIR) -lnn $(RPATH) -lm

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

$(BUILD)/bench/%: bench/%.c bench/bench.h $(LIBDIR)/libnn.so
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ -L$(LIBDIR) -lnn $(RPATH) -lm

# The classifier benchmark counts the library's allocations per call
# through its allocator's test hook (internal, so libnn.a).
$(BUILD)/bench/classifier_bench: bench/classifier_bench.c bench/bench.h $(LIBDIR)/libnn.a $(wildcard examples/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LIBDIR)/libnn.a $(LIBS)

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
            libclang-rt-14-dev libomp-14-dev abigail-tools libopenmpi-dev \
            openmpi-bin python3-mpi4py
deps:
	@scripts/deps.sh $(DEB_PKGS)

# ---- the README's two commands ----
# The builds inside check run JOBS at once; the tests run one at a time.
JOBS ?= -j2
check: deps
	$(MAKE) $(JOBS) all tests
	$(MAKE) check-c check-python check-mpi asan tsan fuzz

check-c: tests lib examples tools $(INSPECT_FIXTURE)
	@scripts/run-tests.sh $(TESTS)
	@scripts/check-abi.sh $(LIBDIR)/libnn.so
	@scripts/check-deps.sh $(BUILD)
	@scripts/check-abidiff.sh $(LIBDIR)/libnn.so
	@scripts/check-install.sh
	@scripts/check-examples.sh $(BUILD)/examples
	@scripts/check-inspect.sh $(BUILD)

check-python: lib
	@LIBDIR=$(LIBDIR) scripts/run-pytest.sh

# libnn_mpi: its ABI, then several processes under mpirun (scripts/run-mpi-tests.sh).
check-mpi: lib $(MPI_TESTS) $(MPI_EXAMPLES)
ifeq ($(HAVE_MPI),1)
	@scripts/check-abi.sh $(MPI_LIB) tests/symbols_mpi.txt include/nn_mpi.h nn_mpi_
	@BUILD=$(BUILD) scripts/run-mpi-tests.sh
else
	@echo "mpi: skipped, no MPI found (pkg-config $(MPI_PC)); make deps installs Open MPI"
endif

# Tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	$(MAKE) $(JOBS) BUILD=build-asan LIBDIR=build-asan/lib OPT=-O1 \
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
	$(MAKE) $(JOBS) BUILD=build-tsan LIBDIR=build-tsan/lib OPT=-O1 OPENMP="$(TSAN_OPENMP)" \
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
	$(MAKE) $(JOBS) CC=clang BUILD=build-fuzz LIBDIR=build-fuzz/lib OPT="-O1" \
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
# every model from 3 seeds, then its plots, all into $(RESIDUAL_OUT); the
# summary (mean and range per model, the orderings per seed) ends the
# run's output. A run of seconds that only exercises the code:
# make residual-experiment RESIDUAL_ARGS="--quick 1"
# make residual-docs runs the default and copies the two figures README.md
# and docs/diagnostics.md show into docs/.
RESIDUAL_OUT ?= $(BUILD)/residual_out
RESIDUAL_ARGS ?=
.PHONY: residual-experiment residual-docs
residual-experiment: lib $(BUILD)/examples/residual_vs_plain
	$(BUILD)/examples/residual_vs_plain --out $(RESIDUAL_OUT) $(RESIDUAL_ARGS)
	$(PYTHON) tools/plot_residual.py $(RESIDUAL_OUT)

residual-docs: residual-experiment
	cp $(RESIDUAL_OUT)/training_error.png docs/residual_training_error.png
	cp $(RESIDUAL_OUT)/grad_profile.png docs/residual_grad_profile.png
	@echo "docs/residual_*.png refreshed from $(RESIDUAL_OUT)"

bench: lib $(BENCHES)
	@scripts/run-bench.sh

# Q3a training over MPI: 1 process x 2 threads against 2 processes x 1
# thread, the allreduce's share of a step and the scaling efficiency.
bench-mpi: lib $(BUILD)/bench/mpi/mpi_bench
	@BUILD=$(BUILD) scripts/run-bench-mpi.sh

# ---- Q3c: training curves with and without augmentation ----
# Trains cifar_cnn (Q3a) and cifar_augment (Q3b) on the default data
# (Fashion-MNIST; CIFAR-10 with CURVES_ARGS="--data DIR") once per seed of
# CURVES_SEEDS, into $(CURVES_DIR): each run's history (cnn_seedS.csv,
# augment_seedS.csv) and output (the same name, .log: the test accuracy
# comes from there). tools/plot_history.py then plots each program's mean
# curve with the range over the seeds shaded (curves.png) and prints the
# table of the last epoch and the test accuracy, mean [min, max] over the
# seeds, which it also writes to summary.md with the date and wall time.
# A shorter run: make curves EPOCHS=3 CURVES_SEEDS=42 CURVES_ARGS="--train 10000".
# make curves-docs runs it and copies the figure over the committed
# docs/curves.png (the README's Q3a and Q3c figures: the defaults,
# 10 epochs, seeds 42 1 2, CURVES_ARGS="--threads 1").
EPOCHS       ?= 10
CURVES_SEEDS ?= 42 1 2
CURVES_ARGS  ?=
CURVES_DIR   ?= $(BUILD)/curves
.PHONY: curves curves-docs
# bash for pipefail: a run that fails stops the loop despite its tee.
curves: SHELL := /bin/bash
curves: .SHELLFLAGS := -o pipefail -ec
curves: $(BUILD)/examples/cifar_cnn $(BUILD)/examples/cifar_augment
	@mkdir -p $(CURVES_DIR)
	start=$$(date +%s); \
	for s in $(CURVES_SEEDS); do \
	  for p in cnn:cifar_cnn augment:cifar_augment; do \
	    $(BUILD)/examples/$${p#*:} --epochs $(EPOCHS) --seed $$s $(CURVES_ARGS) \
	      --history $(CURVES_DIR)/$${p%%:*}_seed$$s.csv \
	      | tee $(CURVES_DIR)/$${p%%:*}_seed$$s.log; \
	  done; \
	done; \
	$(PYTHON) tools/plot_history.py --seeds $(CURVES_SEEDS) --started $$start \
	  $(CURVES_DIR)/cnn_seed{seed}.csv $(CURVES_DIR)/augment_seed{seed}.csv \
	  --labels "Q3a: no augmentation" "Q3b: RandomFlip + RandomRotation(0.2)" \
	  --title "Q3c: train vs validation" -o $(CURVES_DIR)/curves.png

curves-docs: curves
	cp $(CURVES_DIR)/curves.png docs/curves.png
	@echo "docs/curves.png refreshed from $(CURVES_DIR)/curves.png"

# ---- install ----
# The tools are linked again for their place: their rpath is the
# installed library's directory, not the build tree's.
install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/bin
	@mkdir -p $(BUILD)/install
	for t in $(notdir $(basename $(wildcard tools/*.c))); do \
	  $(CC) $(TOOL_CFLAGS) tools/$$t.c -o $(BUILD)/install/$$t -L$(LIBDIR) -lnn \
	    -Wl,-rpath,$(PREFIX)/lib -lm -lpthread && \
	  install -m 755 $(BUILD)/install/$$t $(DESTDIR)$(PREFIX)/bin/ || exit 1; \
	done
	install -m 644 include/nn.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(LIBDIR)/libnn.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libnn.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libnn.so.$(VERSION_MAJOR)
	ln -sf libnn.so.$(VERSION_MAJOR) $(DESTDIR)$(PREFIX)/lib/libnn.so
	install -m 644 $(LIBDIR)/libnn.a $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	  -e 's|@BLAS_LIBS@|$(BLAS_LIBS)|' nn.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nn.pc
ifeq ($(HAVE_MPI),1)
	install -m 644 include/nn_mpi.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(LIBDIR)/libnn_mpi.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libnn_mpi.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libnn_mpi.so.$(VERSION_MAJOR)
	ln -sf libnn_mpi.so.$(VERSION_MAJOR) $(DESTDIR)$(PREFIX)/lib/libnn_mpi.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	  -e 's|@MPI_PC@|$(MPI_PC)|' mpi/nn_mpi.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nn_mpi.pc
endif
	@echo "libnn $(VERSION) installed in $(DESTDIR)$(PREFIX). Build a program with"
	@echo "  cc prog.c \$$(PKG_CONFIG_PATH=$(PREFIX)/lib/pkgconfig pkg-config --cflags --libs nn) -Wl,-rpath,$(PREFIX)/lib"
	@echo "(the rpath lets it find libnn.so.$(VERSION_MAJOR) at run time; or set LD_LIBRARY_PATH=$(PREFIX)/lib,"
	@echo "or run ldconfig once if $(PREFIX)/lib is listed in /etc/ld.so.conf.d)."
ifeq ($(HAVE_MPI),1)
	@echo "With MPI (libnn_mpi): pkg-config --cflags --libs nn_mpi, the same way."
endif

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/nn.h $(DESTDIR)$(PREFIX)/lib/libnn.* \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/nn.pc $(DESTDIR)$(PREFIX)/include/nn_mpi.h \
	  $(DESTDIR)$(PREFIX)/lib/libnn_mpi.* $(DESTDIR)$(PREFIX)/lib/pkgconfig/nn_mpi.pc \
	  $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(notdir $(basename $(wildcard tools/*.c))))

clean:
	rm -rf build build-asan build-tsan build-fuzz lib/libnn.* lib/libnn_mpi.*
