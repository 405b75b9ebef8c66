// SPDX-License-Identifier: MIT
// Function symbols of an ELF file through libelf (elfutils, which libbpf itself uses): where
// uprobes go. One call per file, from the JS thread, when user space first meets the file.
#include "elf_symbols.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

#include <set>
#include <vector>

namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

struct ElfHandle {
  Elf *e;
  ~ElfHandle() {
    if (e) elf_end(e);
  }
};

}  // namespace

ElfSymbolsResult ElfSymbols(const std::string &path, const std::vector<std::string> &names) {
  ElfSymbolsResult out;
  if (elf_version(EV_CURRENT) == EV_NONE) {
    out.error = "libelf: version mismatch";
    return out;
  }
  Fd fd{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) {
    out.error = std::string("open: ") + strerror(errno);
    return out;
  }
  ElfHandle h{elf_begin(fd.fd, ELF_C_READ_MMAP, nullptr)};
  if (!h.e || elf_kind(h.e) != ELF_K_ELF) {
    out.error = "not an ELF file";
    return out;
  }
  GElf_Ehdr eh;
  if (!gelf_getehdr(h.e, &eh)) {
    out.error = std::string("libelf: ") + elf_errmsg(-1);
    return out;
  }
  out.elf = true;
  // program headers: a symbol's address -> its offset in the file (uprobes want offsets)
  size_t nph = 0;
  elf_getphdrnum(h.e, &nph);
  std::vector<GElf_Phdr> loads;
  for (size_t i = 0; i < nph; i++) {
    GElf_Phdr ph;
    if (gelf_getphdr(h.e, i, &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) loads.push_back(ph);
  }
  std::set<std::string> want(names.begin(), names.end());
  Elf_Scn *scn = nullptr;
  while ((scn = elf_nextscn(h.e, scn)) != nullptr) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM)) continue;
    if (sh.sh_type == SHT_SYMTAB) out.symtab = true;
    else out.dynsym = true;
    Elf_Data *data = elf_getdata(scn, nullptr);
    if (!data || !sh.sh_entsize) continue;
    size_t n = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < n; i++) {
      GElf_Sym sym;
      if (!gelf_getsym(data, i, &sym)) continue;
      if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || !sym.st_value) continue;
      const char *name = elf_strptr(h.e, sh.sh_link, sym.st_name);
      if (!name || !want.count(name) || out.symbols.count(name)) continue;
      for (auto &ph : loads) {
        if (sym.st_value >= ph.p_vaddr && sym.st_value < ph.p_vaddr + ph.p_memsz) {
          out.symbols[name] = ElfSymbol{sym.st_value - ph.p_vaddr + ph.p_offset, sym.st_value, sym.st_size};
          break;
        }
      }
    }
  }
  return out;
}
