# lev-redis: the two README commands, and the tools around them.
#   make example   install what is missing, build, install the rock locally,
#                  run the quick-start against Redis on :6379 or the mock
#   make test      install what is missing, build, run every test suite
#   make bench     the benchmark against hiredis and the Node clients (bench/),
#                  then W6 pub/sub, W7 cluster, W8 caching (bench/round2.sh)
#   make bench-quick  callgrind instructions per op of the hot path, as
#                  deltas against bench/baseline.txt (about a minute)
#   make fuzz      libFuzzer targets for FUZZ_SECONDS each (default 60)
#   make pack      build/pack/lev-redis-VERSION-1.src.rock (+ its rockspec and
#                  tarball): installs with luarocks where there is no checkout

BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_FUZZ  ?= build-fuzz
ROCKS       ?= .rocks
FUZZ_SECONDS ?= 60
JOBS        ?= 2
# make pack: the version comes from the C core (redis.VERSION); the release
# step passes the URL the tarball is published at.
VERSION     ?= $(shell sed -n 's/^\#define RESP_VERSION "\(.*\)"/\1/p' csrc/resp/resp.h)
RELEASE_URL ?= https://lev-redis.invalid/releases/lev-redis-$(VERSION).tar.gz
PACK        ?= $(BUILD)/pack

DEBS = lua5.4 liblua5.4-dev libuv1-dev libssl-dev luarocks lua-busted \
       redis-server redis-tools cmake pkg-config gcc make openssl \
       valgrind clang libclang-rt-14-dev
BENCH_DEBS = libhiredis-dev gnuplot-nox util-linux

.PHONY: all deps bench-deps build build-asan example test test-asan \
        bench bench-quick bench-w8 fuzz rock pack clean

all: build

deps:
	@tools/install-deps.sh $(DEBS)

bench-deps:
	@tools/install-deps.sh $(DEBS) $(BENCH_DEBS)
	@# Node peers: Debian's nodejs and npm, unless a node with npm is there.
	@command -v node >/dev/null && command -v npm >/dev/null \
	  || tools/install-deps.sh nodejs npm

build: deps
	@cmake -S . -B $(BUILD) -DLEVR_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DLEVR_SANITIZE=ON -DLEVR_WERROR=ON \
	  -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)

rock: build
	@luarocks --lua-version 5.4 make --tree $(ROCKS) \
	  rockspec/lev-redis-scm-1.rockspec >$(BUILD)/rock.log 2>&1 \
	  || { cat $(BUILD)/rock.log; exit 1; }

pack: deps
	@tools/pack.sh "$(VERSION)" "$(RELEASE_URL)" "$(PACK)"

example: rock
	@tools/run-example.sh $(ROCKS)

test: build build-asan
	@tools/run-tests.sh $(BUILD) $(BUILD_ASAN)

bench: bench-deps build
	@bench/run.sh $(BUILD)
	@bench/round2.sh $(BUILD)

bench-quick: bench-deps build
	@bench/quick.sh $(BUILD)

fuzz: deps
	@CC=clang cmake -S . -B $(BUILD_FUZZ) -DLEVR_FUZZ=ON -DLEVR_SANITIZE=ON \
	  -DLEVR_TESTS=OFF -DLEVR_MODULES=OFF >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS)
	@tools/run-fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ) $(ROCKS)

# W8 (client-side caching, contract 17): ops/s with and without the cache
# in one run, and instructions per cached hit (bench/w8.sh).
bench-w8: build
	@bench/w8.sh $(BUILD)
