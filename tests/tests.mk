# Tests, included by the top-level Makefile.
#   unit         cmocka tests of each module (tests/unit/test_*.c)
#   pyoffsets    the frame layouts against every Python's headers found here
#   golden       checked-in captures -> expected reports (tests/golden)
#   integration  real Python programs under pymem, on every Python found, and
#                the native programs of tests/native

UNIT_CFLAGS := $(BASE_CFLAGS) $(SAN_FLAGS) -Ianalyzer -Ipreload -Itests/unit -pthread
UNIT_PRELOAD_OBJS := $(filter-out $(BUILD)/preload/entry/interpose.o,$(PRELOAD_OBJS))
UNIT_TESTS := format live stacktree replay recorder window
UNIT_BINS := $(UNIT_TESTS:%=$(BUILD)/tests/test_%)
# test_interpose makes its own malloc the binary's: not with a sanitizer's.
ifeq ($(SANITIZE),)
UNIT_BINS += $(BUILD)/tests/test_interpose
endif

$(BUILD)/tests/builder.o: tests/unit/builder.c tests/unit/builder.h $(wildcard include/pymem/*.h) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) -c $< -o $@

$(BUILD)/tests/test_%: tests/unit/test_%.c $(ANALYZER_LIB_OBJS) $(UNIT_PRELOAD_OBJS) $(BUILD)/tests/builder.o
	@mkdir -p $(dir $@)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(ANALYZER_LIB_OBJS) $(UNIT_PRELOAD_OBJS) $(BUILD)/tests/builder.o \
		-lcmocka -ldl $(ANALYZER_LIBS)

# This one links the interposer too: its malloc is the test binary's own.
# -fno-builtin: the test sets the guard around malloc calls, stores that a
# compiler allowed to reason about malloc would drop; and it frees on purpose
# what it then looks for in the capture.
$(BUILD)/tests/test_interpose: tests/unit/test_interpose.c $(ANALYZER_LIB_OBJS) $(PRELOAD_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -fno-builtin -Wno-use-after-free -Ianalyzer -Ipreload -pthread -o $@ $< \
		$(ANALYZER_LIB_OBJS) $(PRELOAD_OBJS) -lcmocka -ldl $(ANALYZER_LIBS)

$(BUILD)/tests/libpmtest.so: tests/integration/pmtest.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -fno-builtin -fPIC -shared -pthread -o $@ $<

# Native test programs (tests/native): built with line information and frame
# pointers, not optimised, so the call chains are the ones in the source.
NATIVE_DIR := $(BUILD)/tests/native
NATIVE_CFLAGS := -O0 -g -fno-omit-frame-pointer -fno-builtin -Wno-use-after-free
NATIVE_BINS := $(NATIVE_DIR)/chain $(NATIVE_DIR)/recurse $(NATIVE_DIR)/ownmalloc $(NATIVE_DIR)/loader \
	$(NATIVE_DIR)/libplugin_a.so $(NATIVE_DIR)/libplugin_b.so $(NATIVE_DIR)/libplugin_stripped.so \
	$(NATIVE_DIR)/plugins/libplugin_a.so $(NATIVE_DIR)/libhybrid.so $(NATIVE_DIR)/cxx $(NATIVE_DIR)/ctor_main

$(NATIVE_DIR)/%: tests/native/%.c
	@mkdir -p $(dir $@)
	$(CC) $(NATIVE_CFLAGS) -o $@ $<

# RUNPATH (new dtags) $ORIGIN/plugins: a dlopen by bare name from the loader
# only works if dlopen still sees the loader as its caller under pymem.
$(NATIVE_DIR)/loader: tests/native/loader.c
	@mkdir -p $(dir $@)
	$(CC) $(NATIVE_CFLAGS) -Wl,--enable-new-dtags,-rpath,'$$ORIGIN/plugins' -o $@ $< -ldl

$(NATIVE_DIR)/libplugin_%.so: tests/native/plugin.c
	@mkdir -p $(dir $@)
	$(CC) $(NATIVE_CFLAGS) -fPIC -shared -DPLUGIN_NAME=$* -o $@ $<

$(NATIVE_DIR)/plugins/libplugin_a.so: $(NATIVE_DIR)/libplugin_a.so
	@mkdir -p $(dir $@)
	cp $< $@

$(NATIVE_DIR)/libplugin_stripped.so: tests/native/plugin.c
	@mkdir -p $(dir $@)
	$(CC) $(NATIVE_CFLAGS) -fPIC -shared -DPLUGIN_NAME=stripped -o $@ $<
	strip --strip-all $@

# A library with a constructor that allocates, linked into its program: its
# constructor runs before pymem's.
$(NATIVE_DIR)/libctor.so: tests/native/ctor.c
	@mkdir -p $(dir $@)
	$(CC) $(NATIVE_CFLAGS) -fPIC -shared -DCTOR_LIB -o $@ $<

$(NATIVE_DIR)/ctor_main: tests/native/ctor.c $(NATIVE_DIR)/libctor.so
	@mkdir -p $(dir $@)
	$(CC) $(NATIVE_CFLAGS) -pthread -o $@ $< -L$(NATIVE_DIR) -lctor -Wl,-rpath,'$$ORIGIN'

$(NATIVE_DIR)/cxx: tests/native/cxx.cpp
	@mkdir -p $(dir $@)
	g++ -O0 -g -fno-omit-frame-pointer -o $@ $<

$(NATIVE_DIR)/libhybrid.so: tests/native/hybrid.c
	@mkdir -p $(dir $@)
	$(CC) $(NATIVE_CFLAGS) -fPIC -shared -o $@ $<

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

pyoffsets: | $(DEPS_STAMP)
	@sh tests/unit/run_pyoffsets.sh $(BUILD)/tests

golden: $(BUILD)/pymem
	@sh tests/golden/run.sh $(BUILD)/pymem

integration: all $(BUILD)/tests/libpmtest.so $(NATIVE_BINS)
	@python3 tests/integration/run.py --build $(BUILD) --once-also 3.13

check-cpython: all
	@sh scripts/check-cpython.sh $(BUILD)/pymem

# pymem installed: man page against help, make install/uninstall in a
# staging root, and (as root) the Debian package installed and removed.
package: all
	@/usr/bin/python3 tests/package/run.py --build $(BUILD)

# The preload's layer rule and the halves' boundaries (HACKING.md, "Layers").
layers: all
	@python3 scripts/check-layers.py $(BUILD)

# The frame watch's self-check: a build whose walks read the frames the
# watch leaves unread all the same, and stop the program at one that moved,
# run with the watch on from start-up over the tests of stacks, threads,
# forks and exits, and the real programs compared with tracemalloc, on every
# Python with a frame watch (3.9+); then CPython's own tests of tracing,
# monitoring, generators and exceptions under it.
WATCH_BUILD := $(BUILD)/watchcheck
WATCH_TESTS := leak_at_known_line threads_lose_nothing exit_paths fork_and_children embedding_twice \
	stack_depth_and_generators reentered_stacks deep_cached window_edge cut_moves beyond_frame_cache frame_watch \
	frame_evaluator tracemalloc_oracle attribution_reproductions tracemalloc_start_stop temporaries
comma := ,
space := $(subst ,, )
check-watch: all $(BUILD)/tests/libpmtest.so
	@$(MAKE) --no-print-directory BUILD=$(WATCH_BUILD) PRELOAD_DEFS=-DPM_WATCH_SELFCHECK $(WATCH_BUILD)/libpymem.so
	@python3 tests/integration/run.py --build $(BUILD) --preload $(WATCH_BUILD)/libpymem.so \
		--env PYMEM_FRAME_WATCH=1 --min-python 3.9 -k $(subst $(space),$(comma),$(strip $(WATCH_TESTS)))
	@sh scripts/check-watch-cpython.sh $(WATCH_BUILD)/libpymem.so

# The line cursors' self-check: a build that also asks CPython's
# PyCode_Addr2Line for every line it finds from a cursor, and stops the
# program at a difference, over the tests of lines and the real programs
# compared with tracemalloc, on every Python.
LINES_BUILD := $(BUILD)/linecheck
LINES_TESTS := leak_at_known_line peak_at_known_line own_line_first lines tracemalloc_oracle \
	attribution_reproductions stack_depth_and_generators reentered_stacks
check-lines: all
	@$(MAKE) --no-print-directory BUILD=$(LINES_BUILD) PRELOAD_DEFS=-DPM_LINE_SELFCHECK $(LINES_BUILD)/libpymem.so
	@python3 tests/integration/run.py --build $(BUILD) --preload $(LINES_BUILD)/libpymem.so \
		-k $(subst $(space),$(comma),$(strip $(LINES_TESTS)))

test: all layers unit tsan pyoffsets golden integration check-watch check-lines package check-peers check-cpython
