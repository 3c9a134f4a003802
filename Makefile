# calpa - one plain Makefile.  `make` builds bin/calpa (objects under build/),
# `make test` runs every cmocka test and the command-line tests, `make demo`
# shows the main job on a built-in default.
#   SANITIZE=address,undefined  DEBUG=1  V=1  NO_CUDA=1  NO_MPI=1  NO_NCCL=1
CC ?= cc
.DEFAULT_GOAL := all
CUDA_HOME ?= /usr/local/cuda
export CUDA_HOME

comma := ,
ifneq ($(SANITIZE),)
  BUILD := build/san-$(subst $(comma),-,$(SANITIZE))
else ifneq ($(DEBUG),)
  BUILD := build/debug
else
  BUILD := build/release
endif
BIN := bin/calpa$(if $(SANITIZE),-san,)$(if $(DEBUG),-debug,)

Q := $(if $(V),,@)
CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation \
          -g -MMD -MP -Icommon -Imodels -Iplanner -Isim -Iexec
CFLAGS += $(if $(DEBUG),-O0,-O2)
LDLIBS := -lglpk -lcjson -lm
ifneq ($(SANITIZE),)
  CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=$(SANITIZE)
endif

# Required Debian packages: install them (scripts/install-deps.sh) if any is missing.
DEPS_OK := $(shell sh scripts/install-deps.sh --check && echo 1)
ifneq ($(DEPS_OK),1)
  $(info calpa: installing missing packages with scripts/install-deps.sh)
  $(if $(shell sh scripts/install-deps.sh >&2 && echo ok),,$(error install the packages above, then run make again))
endif

# Optional parts, probed once per NO_* combination.
CONFIG := build/config$(if $(NO_CUDA),-nocuda)$(if $(NO_MPI),-nompi)$(if $(NO_NCCL),-nonccl).mk
-include $(CONFIG)
$(CONFIG): scripts/configure.sh
	@sh scripts/configure.sh $@ "$(NO_CUDA)" "$(NO_MPI)" "$(NO_NCCL)"
CFLAGS += -DCALPA_HAVE_MPI=$(HAVE_MPI) -DCALPA_HAVE_CUDA=$(HAVE_CUDA) -DCALPA_HAVE_NCCL=$(HAVE_NCCL)
# exec/: OpenBLAS always (a required package); MPI headers only for exec/*.c, MPI libs when found.
LDLIBS += -lopenblas
ifeq ($(HAVE_MPI),1)
  EXEC_CFLAGS := $(shell mpicc --showme:compile)
  LDLIBS += $(shell mpicc --showme:link)
endif

LIB_SRC := $(wildcard common/*.c models/*.c planner/*.c sim/*.c exec/*.c)
LIB_SRC := $(filter-out common/main.c,$(LIB_SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libcalpa.a
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Fuzz harnesses (tests/fuzz/fuzz_NAME.c): in make test each is a plain
# binary replaying its seed corpus and checked-in crashes; make fuzz builds
# them with libFuzzer (clang, build/fuzz) and fuzzes each for FUZZ_SECONDS.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz-replay/%)

.PHONY: all test demo bench clean distclean deps
all: $(BIN)

$(BUILD)/%.o: %.c $(CONFIG)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/exec/%.o: exec/%.c $(CONFIG)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(EXEC_CFLAGS) -c $< -o $@

# The CUDA backend (exec/*.cu) when nvcc and cuBLAS were found: nvcc builds
# sm_80 and sm_90 code; without it exec/cuda_none.c says why at run time.
CUDA_BACKEND := $(and $(filter 1,$(HAVE_CUDA)),$(filter 1,$(HAVE_CUBLAS)))
CFLAGS += -DCALPA_CUDA_BACKEND=$(if $(CUDA_BACKEND),1,0)
ifneq ($(CUDA_BACKEND),)
  NVCC := $(CUDA_DIR)/bin/nvcc
  NVCCFLAGS := -std=c++17 -O2 -g -MMD -MP -gencode arch=compute_80,code=sm_80 \
               -gencode arch=compute_90,code=sm_90 -Werror all-warnings \
               -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter \
               -Icommon -Iexec $(EXEC_CFLAGS) -DCALPA_HAVE_MPI=$(HAVE_MPI) -DCALPA_HAVE_NCCL=$(HAVE_NCCL)
  LIB_OBJ += $(patsubst %.cu,$(BUILD)/%.o,$(wildcard exec/*.cu))
  LDLIBS += -L$(CUDA_DIR)/lib64 -Wl,-rpath,$(CUDA_DIR)/lib64 -lcublas -lcudart \
            $(if $(filter 1,$(HAVE_NCCL)),-lnccl) -lstdc++
endif
$(BUILD)/exec/%.o: exec/%.cu $(CONFIG)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  NVCC    $<")
	$(Q)$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(BUILD)/common/main.o $(LIB)
	@mkdir -p bin
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(LIB) $(CONFIG)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

$(BUILD)/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/util.c \
                             $(wildcard tests/fuzz/*.h) $(LIB) $(CONFIG)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests/fuzz -DFUZZ_NAME='"$*"' $< tests/fuzz/replay.c \
	    tests/fuzz/util.c $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

# Every cmocka binary and fuzz replay, then the command-line tests; one summary line at the end.
test: $(BIN) $(TEST_BIN) $(FUZZ_REPLAY)
	$(Q)sh scripts/run-tests.sh "$(BIN)" $(TEST_BIN) $(FUZZ_REPLAY)

# make fuzz FUZZ_SECONDS=N: every harness under libFuzzer for N seconds,
# one at a time at nice 19; executions and crashes per harness.  Crashes
# land in build/fuzz/crashes/ (copy them to tests/fuzz/regress/NAME/).
FUZZ_SECONDS ?= 60
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
.PHONY: fuzz fuzz-build
fuzz:
	$(Q)$(MAKE) --no-print-directory fuzz-build CC=clang BUILD=build/fuzz FUZZING=1 NO_MPI=1 NO_CUDA=1 NO_NCCL=1
	$(Q)sh tests/fuzz/run.sh build/fuzz "$(FUZZ_SECONDS)" $(FUZZ_NAMES)
fuzz-build: $(FUZZ_NAMES:%=$(BUILD)/fuzz-bin/fuzz_%)
ifneq ($(FUZZING),)
  CFLAGS := $(filter-out -Werror,$(CFLAGS)) -Wno-unknown-warning-option \
            -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
$(BUILD)/fuzz-bin/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/util.c $(wildcard tests/fuzz/*.h) $(LIB) $(CONFIG)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $< (libFuzzer)")
	$(Q)$(CC) $(CFLAGS) -Itests/fuzz $< tests/fuzz/util.c $(LIB) \
	    -fsanitize=fuzzer,address,undefined $(LDLIBS) -o $@

demo: $(BIN)
	$(Q)sh scripts/demo.sh "$(BIN)"

bench: $(BIN)
	$(Q)sh scripts/bench.sh "$(BIN)"

.PHONY: figures
figures: $(BIN)
	$(Q)sh scripts/reproduce-paper.sh "$(BIN)"

deps:
	sh scripts/install-deps.sh

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(BUILD)/common/main.d
