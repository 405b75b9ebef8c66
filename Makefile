# Osprey build. `make build` installs what is missing, then bpf/ -> skeleton -> native addon -> TS.
# Every step is a file target, so a second `make build` with nothing changed takes seconds.
SHELL := /bin/bash
.DEFAULT_GOAL := build

OUT := bpf/.output
BPF_SRC := $(wildcard bpf/*.bpf.c)
BPF_HDR := $(wildcard bpf/abi/*.h bpf/lib/*.h)
NATIVE := native/build/Release/osprey_native.node
STAMP := .make

# build tools, and the real servers/clients the tests and the demo drive
APT_PKGS := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config make g++ \
	nginx-light wrk curl python3 golang-go openjdk-17-jdk-headless bpftrace hyperfine \
	iproute2 procps psmisc prometheus

.PHONY: build deps test demo bench lint typecheck clean
# keep the .bpf.o: the ABI layout test reads its BTF
.SECONDARY:

build: deps $(NATIVE) $(STAMP)/ts

deps: $(STAMP)/apt $(STAMP)/npm

$(STAMP)/apt: Makefile
	@mkdir -p $(STAMP)
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(STAMP)/npm: package.json package-lock.json
	@mkdir -p $(STAMP)
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

$(NATIVE): $(OUT)/capture.skel.h $(wildcard native/src/*) native/binding.gyp $(STAMP)/npm
	cd native && npx --no-install node-gyp rebuild --silent >/dev/null
	@test -f $@

$(STAMP)/ts: $(shell find src test -name "*.ts") tsconfig.json $(STAMP)/npm
	npx --no-install tsc -p tsconfig.json
	@touch $@

typecheck: deps
	npx --no-install tsc -p tsconfig.json --noEmit

lint: deps
	npx --no-install eslint .

test: build $(OUT)/capture.bpf.o
	npx --no-install tsc -p tsconfig.json --noEmit
	npx --no-install eslint .
	node --test --test-concurrency=1 --test-reporter=spec dist/

demo: build
	bin/osprey up --demo

bench: build
	node bench/run.mjs $(if $(QUICK),--quick,)

clean:
	rm -rf $(OUT) native/build dist $(STAMP)
