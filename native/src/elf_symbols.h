// SPDX-License-Identifier: MIT
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

struct ElfSymbol {
  uint64_t offset;   // in the file: what a uprobe is attached at
  uint64_t address;  // st_value
  uint64_t size;
};

struct ElfSymbolsResult {
  std::string error;  // set when the file could not be read as ELF
  bool elf = false;
  bool symtab = false;  // has .symtab (not stripped)
  bool dynsym = false;  // has .dynsym (exported symbols)
  std::map<std::string, ElfSymbol> symbols;  // the defined functions asked for that were found
};

ElfSymbolsResult ElfSymbols(const std::string &path, const std::vector<std::string> &names);
