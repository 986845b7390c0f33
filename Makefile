# pymem: a memory profiler for Python programs.
#
#   make            build build/libpymem.so and build/pymem
#   make test       build, then run the unit, golden and integration tests
#   make layers     the preload's layers call only downward (scripts/check-layers.py)
#   make demo       profile examples/demo.py and print the report
#   make asan       unit and golden tests under AddressSanitizer + UBSan
#   make tsan       the concurrent recorder test under ThreadSanitizer
#   make check-cpython   CPython's own regression tests under pymem (long)
#   make bench      overhead against plain runs and other tools (not in make test)
#   make check-watch  the frame watch's self-check build over the stack tests (in make test)
#   make check-lines  the line cursors' self-check build over the line tests (in make test)
#   make check-peers  native test programs under pymem --native and heaptrack, compared
#   make install    PREFIX=/usr/local, DESTDIR=; make uninstall removes it all again
#   make deb        the Debian package pymem_<version>_<arch>.deb, checked by lintian
#   make package    tests of the installed tool (in make test): man page, install, the .deb
#   make fuzz       libFuzzer over the capture reader and every analysis (FUZZ_RUNS, FUZZ_TIME)
#   SANITIZE=address,undefined   instrument the analyzer and unit tests
#
# Debian packages the build and the tests need are installed on first use
# (scripts/install-deps.sh, as root); nothing else is fetched.

CC ?= cc
BUILD ?= build
SANITIZE ?=

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=c11 -O2 -g $(WARN) -Iinclude
ifneq ($(SANITIZE),)
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

# The preload runs inside other programs' malloc: hidden symbols, initial-exec
# TLS (no __tls_get_addr on the hot path), and no builtin that could turn our
# own code into a call to malloc or calloc. No frame pointer: native stacks
# are unwound from the unwind tables (libunwind), and the register saves
# ~3% of the recorder's instructions (callgrind, small_objects on 3.12).
PRELOAD_CFLAGS := $(BASE_CFLAGS) -Ipreload -fPIC -fvisibility=hidden -ftls-model=initial-exec \
	-fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free \
	-fomit-frame-pointer -pthread
ifneq ($(PRELOAD_SAN),)
PRELOAD_CFLAGS += $(SAN_FLAGS)
endif
# Test builds' checks (PRELOAD_DEFS=-DPM_WATCH_SELFCHECK: the frame watch).
PRELOAD_CFLAGS += $(PRELOAD_DEFS)
# Layers, lowest first (HACKING.md, "Layers"): base, io, stacks, core, entry.
PRELOAD_SRCS := $(wildcard preload/*/*.c)
PRELOAD_OBJS := $(PRELOAD_SRCS:preload/%.c=$(BUILD)/preload/%.o)

# The replay loop is the analyzer's cost: -O3 reads server captures ~10% faster
# (measured on a 15 M-event gunicorn worker capture, 18.5 -> 21-22 M events/s).
# One version, in the file VERSION: `pymem --version`, the Debian package.
VERSION := $(shell cat VERSION)
ANALYZER_CFLAGS := $(BASE_CFLAGS) -O3 $(SAN_FLAGS) -Ianalyzer -DPM_VERSION='"$(VERSION)"'
ANALYZER_SRCS := $(wildcard analyzer/*.c)
ANALYZER_LIB_SRCS := $(filter-out analyzer/main.c,$(ANALYZER_SRCS))
# The flame graph page's script, linked in as data (flamegraph.c).
ANALYZER_JS_OBJ := $(BUILD)/analyzer/flamegraph_js.o
ANALYZER_OBJS := $(ANALYZER_SRCS:analyzer/%.c=$(BUILD)/analyzer/%.o) $(ANALYZER_JS_OBJ)
ANALYZER_LIB_OBJS := $(ANALYZER_LIB_SRCS:analyzer/%.c=$(BUILD)/analyzer/%.o) $(ANALYZER_JS_OBJ)
ANALYZER_LIBS := -lm -ldw -lelf -lzstd -lz

DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps test layers install uninstall deb package unit pyoffsets golden integration check-watch check-lines demo asan tsan check-cpython check-peers fuzz bench clean
all: $(BUILD)/libpymem.so $(BUILD)/pymem

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps.sh
	@mkdir -p $(BUILD)
	@sh scripts/install-deps.sh
	@touch $@

$(BUILD)/preload/%.o: preload/%.c $(wildcard preload/*/*.h preload/*/*.def include/pymem/*.h) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(PRELOAD_CFLAGS) -c $< -o $@

$(BUILD)/libpymem.so: $(PRELOAD_OBJS) preload/libpymem.map
	$(CC) -shared -pthread -Wl,--version-script=preload/libpymem.map -Wl,-z,now -Wl,-soname,libpymem.so \
		-o $@ $(PRELOAD_OBJS) -ldl -lm -lzstd

$(BUILD)/analyzer/%.o: analyzer/%.c $(wildcard analyzer/*.h include/pymem/*.h) VERSION | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ANALYZER_CFLAGS) -c $< -o $@

$(ANALYZER_JS_OBJ): analyzer/flamegraph.js | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	ld -r -b binary -z noexecstack -o $@ analyzer/flamegraph.js

$(BUILD)/pymem: $(ANALYZER_OBJS)
	$(CC) $(SAN_FLAGS) -o $@ $(ANALYZER_OBJS) $(ANALYZER_LIBS)

include tests/tests.mk

demo: all
	@echo "== profiling examples/demo.py (python3 from PATH)"
	@rm -f $(BUILD)/demo.pmem
	$(BUILD)/pymem run -o $(BUILD)/demo.pmem examples/demo.py
	@echo
	@echo "== pymem peak $(BUILD)/demo.pmem --top 3"
	@$(BUILD)/pymem peak $(BUILD)/demo.pmem --top 3
	@echo
	@echo "== pymem leaks $(BUILD)/demo.pmem --top 3"
	@$(BUILD)/pymem leaks $(BUILD)/demo.pmem --top 3
	@echo
	@echo "== pymem diff $(BUILD)/demo.pmem warm grown --top 3"
	@$(BUILD)/pymem diff $(BUILD)/demo.pmem warm grown --top 3

asan:
	$(MAKE) BUILD=build/asan SANITIZE=address,undefined unit golden

# The recorder, rings and writer under concurrent producers, with the preload's
# own objects instrumented by ThreadSanitizer as well. One process per test
# that runs a writer: ThreadSanitizer does not see pymem's own munmap (a raw
# system call), so what one test's writer unmapped and the next one's rings
# mapped again would look shared between their threads.
TSAN_TESTS := concurrent_producers_lose_nothing turns_take_the_counter_without_reordering \
	owners_change_hands_at_every_number a_seccomp_filter_keeps_pymem_from_membarrier
tsan:
	$(MAKE) BUILD=build/tsan SANITIZE=thread PRELOAD_SAN=1 build/tsan/tests/test_recorder
	for t in $(TSAN_TESTS); do build/tsan/tests/test_recorder $$t || exit 1; done

# Overhead against the plain run and other tools (heaptrack if installed).
# Synthetic captures for the analyzer's figures (bench/synth.c).
$(BUILD)/synth: bench/synth.c tests/unit/builder.c tests/unit/builder.h include/pymem/format.h include/pymem/encode.h
	$(CC) $(BASE_CFLAGS) -Itests/unit -o $@ bench/synth.c tests/unit/builder.c

# heaptrack for its column; libc's debug files for the symbolisation row.
# Debian's Python first (with the analyzer's synthetic figures), then
# pyenv's 3.12 and 3.13 where they are installed.
BENCH_PYTHONS := $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12))) \
	$(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.13.*/bin/python3.13)))
bench: all $(BUILD)/synth
	@sh scripts/install-deps.sh heaptrack libc6-dbg
	python3 bench/run.py
	@for py in $(BENCH_PYTHONS); do echo; python3 bench/run.py --python $$py --synthetic 0 || exit 1; done

# libFuzzer (clang's, from Debian) over the reader and every analysis, with
# ASan and UBSan and the checksum check off (PM_FUZZING). The corpus starts
# from tests/fuzz/seeds; what it finds goes to build/fuzz/findings, to be
# kept in tests/hostile (replayed by make test).
FUZZ_RUNS ?= 1000000
FUZZ_TIME ?= 0
FUZZ_DIR := build/fuzz
$(FUZZ_DIR)/fuzz_capture: tests/fuzz/fuzz_capture.c $(ANALYZER_LIB_SRCS) $(ANALYZER_JS_OBJ) $(wildcard analyzer/*.h include/pymem/*.h)
	@sh scripts/install-deps.sh clang libclang-rt-14-dev
	@mkdir -p $(dir $@)
	clang -std=c11 -O1 -g -Iinclude -Ianalyzer -DPM_FUZZING -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ tests/fuzz/fuzz_capture.c $(ANALYZER_LIB_SRCS) $(ANALYZER_JS_OBJ) \
		$(ANALYZER_LIBS)

fuzz: $(FUZZ_DIR)/fuzz_capture
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/findings
	cp -n tests/fuzz/seeds/*.pmem $(FUZZ_DIR)/corpus/ 2>/dev/null || true
	$(FUZZ_DIR)/fuzz_capture -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -close_fd_mask=3 -artifact_prefix=$(FUZZ_DIR)/findings/ $(FUZZ_DIR)/corpus

# Installation: PREFIX (default /usr/local) and DESTDIR (a staging root).
# libpymem.so goes where the dynamic linker finds it by name, so that
# LD_PRELOAD=libpymem.so works once ldconfig has run (done here when
# installing for real as root); `pymem run` takes the one in ../lib beside
# its own directory. Every file installed is in INSTALLED, which uninstall
# removes, and only the directories pymem made with them.
PREFIX ?= /usr/local
DESTDIR ?=
# The pytest plugin goes where Debian's python3 looks: /usr/lib/python3/
# dist-packages for the package, /usr/local/lib/python3.X/dist-packages for
# a local install; its dist-info's entry point makes pytest load it by itself.
PY_VERSION = $(shell /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY_DIST = $(if $(filter /usr,$(PREFIX)),lib/python3/dist-packages,lib/python$(PY_VERSION)/dist-packages)
PLUGIN_INFO = $(PY_DIST)/pytest_pymem-$(VERSION).dist-info
PUBLIC_HEADERS := $(wildcard include/pymem/*.h)
INSTALLED = bin/pymem lib/libpymem.so $(PUBLIC_HEADERS) share/man/man1/pymem.1.gz share/man/man7/libpymem.7.gz \
	share/bash-completion/completions/pymem share/doc/pymem/README.md share/doc/pymem/HACKING.md \
	$(PY_DIST)/pytest_pymem.py $(PLUGIN_INFO)/METADATA $(PLUGIN_INFO)/entry_points.txt $(PLUGIN_INFO)/RECORD
INSTALLED_DIRS = include/pymem share/doc/pymem $(PLUGIN_INFO)
ROOT := $(DESTDIR)$(PREFIX)

install: all
	install -d $(ROOT)/bin $(ROOT)/lib $(ROOT)/include/pymem $(ROOT)/share/man/man1 $(ROOT)/share/man/man7 \
		$(ROOT)/share/bash-completion/completions $(ROOT)/share/doc/pymem
	install -m 0755 $(BUILD)/pymem $(ROOT)/bin/pymem
	install -m 0644 $(BUILD)/libpymem.so $(ROOT)/lib/libpymem.so
	install -m 0644 $(PUBLIC_HEADERS) $(ROOT)/include/pymem/
	sed 's/@VERSION@/$(VERSION)/' docs/pymem.1 | gzip -9n > $(ROOT)/share/man/man1/pymem.1.gz
	sed 's/@VERSION@/$(VERSION)/' docs/libpymem.7 | gzip -9n > $(ROOT)/share/man/man7/libpymem.7.gz
	install -m 0644 dist/pymem.bash-completion $(ROOT)/share/bash-completion/completions/pymem
	install -m 0644 README.md HACKING.md $(ROOT)/share/doc/pymem/
	install -d $(ROOT)/$(PLUGIN_INFO)
	install -m 0644 python/pytest_pymem.py $(ROOT)/$(PY_DIST)/pytest_pymem.py
	printf 'Metadata-Version: 2.1\nName: pytest-pymem\nVersion: %s\nSummary: pytest memory limits measured by pymem\n' \
		'$(VERSION)' > $(ROOT)/$(PLUGIN_INFO)/METADATA
	printf '[pytest11]\npymem = pytest_pymem\n' > $(ROOT)/$(PLUGIN_INFO)/entry_points.txt
	printf 'pytest_pymem.py,,\n%s/METADATA,,\n%s/entry_points.txt,,\n%s/RECORD,,\n' $(notdir $(PLUGIN_INFO)) \
		$(notdir $(PLUGIN_INFO)) $(notdir $(PLUGIN_INFO)) > $(ROOT)/$(PLUGIN_INFO)/RECORD
	chmod 0644 $(ROOT)/$(PLUGIN_INFO)/*
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

uninstall:
	rm -f $(addprefix $(ROOT)/,$(INSTALLED))
	-rmdir $(addprefix $(ROOT)/,$(INSTALLED_DIRS)) 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

# The Debian package, beside the Makefile: an install under /usr into a
# staging root, stripped, with the changelog and copyright Debian wants and
# Depends from dpkg-shlibdeps; lintian must find no error in it.
DEB_ARCH = $(shell dpkg --print-architecture)
DEB = pymem_$(VERSION)_$(DEB_ARCH).deb
deb: all
	@sh scripts/install-deps.sh dpkg-dev lintian fakeroot
	rm -rf $(BUILD)/deb $(DEB)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(BUILD)/deb/root PREFIX=/usr
	strip --strip-unneeded $(BUILD)/deb/root/usr/bin/pymem $(BUILD)/deb/root/usr/lib/libpymem.so
	install -m 0644 dist/debian/copyright $(BUILD)/deb/root/usr/share/doc/pymem/copyright
	gzip -9n < dist/debian/changelog > $(BUILD)/deb/root/usr/share/doc/pymem/changelog.gz
	chmod 0644 $(BUILD)/deb/root/usr/share/doc/pymem/changelog.gz
	mkdir -p $(BUILD)/deb/root/DEBIAN $(BUILD)/deb/debian
	printf 'Source: pymem\n\nPackage: pymem\nArchitecture: any\n' > $(BUILD)/deb/debian/control
	cd $(BUILD)/deb && dpkg-shlibdeps -O root/usr/bin/pymem root/usr/lib/libpymem.so \
		| sed -n 's/^shlibs:Depends=//p' > depends
	test -s $(BUILD)/deb/depends
	sed -e 's/@VERSION@/$(VERSION)/' -e 's/@ARCH@/$(DEB_ARCH)/' \
		-e "s/@DEPENDS@/$$(cat $(BUILD)/deb/depends)/" \
		-e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(BUILD)/deb/root | cut -f1)/" \
		dist/debian/control.in > $(BUILD)/deb/root/DEBIAN/control
	echo 'activate-noawait ldconfig' > $(BUILD)/deb/root/DEBIAN/triggers
	cd $(BUILD)/deb/root && find usr -type f -exec md5sum {} + > DEBIAN/md5sums
	fakeroot dpkg-deb --build $(BUILD)/deb/root $(DEB)
	lintian --fail-on error $(DEB)

# The native test programs under pymem --native and under heaptrack (installed
# here if missing): leaks, peaks and leak sites compared.
check-peers: all $(NATIVE_BINS)
	@sh scripts/install-deps.sh heaptrack
	python3 scripts/check-peers.py --build $(BUILD)

clean:
	rm -rf build
