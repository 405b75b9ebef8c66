# Osprey build. `make build` installs what is missing, then bpf/ -> skeleton -> native addon -> TS.
# Every step but the Debian package check (one dpkg query) is a file target, so a second
# `make build` with nothing changed takes seconds.
SHELL := /bin/bash
.DEFAULT_GOAL := build

OUT := bpf/.output
BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_HDR := $(wildcard bpf/abi/*.h bpf/lib/*.h)
NATIVE := native/build/Release/osprey_native.node
# Each step's "done" marker lives inside what the step makes, so it cannot outlive it, and
# nothing about the build is tracked by git: a fresh clone (whatever mtimes checkout or
# `git archive` gave its files) has no marker, so every step runs.
# npm writes node_modules/.package-lock.json at the end of every install.
NPM_DONE := node_modules/.package-lock.json
TS_DONE := dist/.built
TS_SRC := $(shell find src test -name '*.ts')
# a deleted or renamed source changes its directory's mtime: dist/ is rebuilt without it
# (named dir/. so that the folder test/ is never mistaken for the target `test`)
TS_DIRS := $(addsuffix /.,$(shell find src test -type d))
# the tests are the compiled twins of the *.test.ts sources, named one by one: never a
# stale test left in dist/, and no folder argument (Node >= 21 reads arguments as globs)
# the web UI (web/, React + Vite) builds into web/dist, which `osprey up` serves at /
WEB_DONE := web/dist/.built
WEB_SRC := $(shell find web/src web/public -type f) web/index.html web/vite.config.ts web/tsconfig.json
TESTS := $(patsubst %.ts,dist/%.js,$(filter %.test.ts,$(TS_SRC)))

# build tools, and the real servers/clients the tests and the demo drive
APT_PKGS := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config make g++ \
	nginx-light wrk curl python3 python3-venv golang-go openjdk-17-jdk-headless bpftrace hyperfine \
	iproute2 procps psmisc prometheus openssl chromium nghttp2-client \
	libcapstone-dev libdw-dev

.PHONY: build deps apt test demo bench lint typecheck clean
# keep the .bpf.o: the ABI layout test reads its BTF
.SECONDARY:

build: deps $(NATIVE) $(TS_DONE) $(WEB_DONE)

deps: apt $(NPM_DONE)

# Asks dpkg every time (one dpkg-query call, a few ms) rather than trusting a stamp file:
# what is installed is the only proof that it is installed.
apt:
	@missing=$$(comm -13 <(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' $(APT_PKGS) 2>/dev/null | awk '$$1 ~ /^.i/ {print $$2}' | sort -u) \
		<(printf '%s\n' $(APT_PKGS) | sort -u)); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(NPM_DONE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(OUT)/vmlinux.h:
	@mkdir -p $(OUT)
	@test -r /sys/kernel/btf/vmlinux || { echo "error: /sys/kernel/btf/vmlinux missing: Osprey needs a kernel built with BTF (CONFIG_DEBUG_INFO_BTF=y)"; exit 1; }
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(OUT)/%.bpf.o: bpf/%.bpf.c $(BPF_HDR) $(OUT)/vmlinux.h
	clang -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Wall -Werror -I$(OUT) -Ibpf -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o
	bpftool gen skeleton $< name $* > $@.tmp && mv $@.tmp $@

$(NATIVE): $(OUT)/capture.skel.h $(wildcard native/src/*) native/binding.gyp $(NPM_DONE)
	cd native && npx --no-install node-gyp rebuild --silent >/dev/null
	@test -f $@

# into a fresh folder, swapped in whole: dist/ holds exactly what the sources compile to
$(TS_DONE): $(TS_SRC) $(TS_DIRS) tsconfig.json $(NPM_DONE)
	rm -rf dist.new
	npx --no-install tsc -p tsconfig.json --outDir dist.new || { rm -rf dist.new; exit 1; }
	rm -rf dist && mv dist.new dist
	@touch $@

# vite only strips types: the type check is tsc's
$(WEB_DONE): $(WEB_SRC) $(NPM_DONE)
	npx --no-install tsc -p web/tsconfig.json
	npx --no-install vite build web --logLevel warn
	@touch $@

typecheck: deps
	npx --no-install tsc -p tsconfig.json --noEmit
	npx --no-install tsc -p web/tsconfig.json

lint: deps
	npx --no-install eslint .

test: build $(OUT)/capture.bpf.o
	npx --no-install tsc -p tsconfig.json --noEmit
	npx --no-install tsc -p web/tsconfig.json
	npx --no-install eslint .
	node --test --test-concurrency=1 --test-reporter=spec $(TESTS)

demo: build
	bin/osprey up --demo

bench: build
	node bench/run.mjs $(if $(QUICK),--quick,)

clean:
	rm -rf $(OUT) native/build dist dist.new .make web/dist
