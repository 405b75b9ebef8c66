// SPDX-License-Identifier: MIT
// Thin bindings over two field-standard readers of program files, for the analysis of Go
// binaries in src/agent/golang/: capstone (x86-64 instruction decoding: where a function's
// RET instructions are, without mistaking a 0xC3 byte inside another instruction for one) and
// elfutils libdw (struct member offsets from DWARF, compressed sections included). What to
// look for and what the answers mean is decided in TypeScript.
#include "golang.h"

#include <capstone/capstone.h>
#include <elfutils/libdw.h>
#include <dwarf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>

namespace {

// x86Instructions(code: Buffer, address: number) ->
//   { decoded: bytes decoded from the start, offsets: number[], sizes: number[], mnemonics: string[], operands: string[] }
// Decodes from the first byte until the end of the buffer or the first byte sequence capstone
// cannot decode (then decoded < code.length: the caller decides what an incomplete listing means).
Napi::Value X86Instructions(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "x86Instructions(code: Buffer, address: number)");
  auto code = info[0].As<Napi::Buffer<uint8_t>>();
  uint64_t address = (uint64_t)info[1].As<Napi::Number>().DoubleValue();
  csh h;
  cs_err err = cs_open(CS_ARCH_X86, CS_MODE_64, &h);
  if (err != CS_ERR_OK) throw Napi::Error::New(env, std::string("capstone cs_open: ") + cs_strerror(err));
  cs_insn *insn = cs_malloc(h);
  if (!insn) {
    cs_close(&h);
    throw Napi::Error::New(env, "capstone cs_malloc failed");
  }
  const uint8_t *p = code.Data();
  size_t left = code.Length();
  uint64_t addr = address;
  auto offsets = Napi::Array::New(env), sizes = Napi::Array::New(env);
  auto mnemonics = Napi::Array::New(env), operands = Napi::Array::New(env);
  uint32_t n = 0;
  while (left > 0 && cs_disasm_iter(h, &p, &left, &addr, insn)) {
    offsets.Set(n, Napi::Number::New(env, (double)(insn->address - address)));
    sizes.Set(n, Napi::Number::New(env, insn->size));
    mnemonics.Set(n, Napi::String::New(env, insn->mnemonic));
    operands.Set(n, Napi::String::New(env, insn->op_str));
    n++;
  }
  cs_free(insn, 1);
  cs_close(&h);
  auto o = Napi::Object::New(env);
  o.Set("decoded", Napi::Number::New(env, (double)(code.Length() - left)));
  o.Set("offsets", offsets);
  o.Set("sizes", sizes);
  o.Set("mnemonics", mnemonics);
  o.Set("operands", operands);
  return o;
}

std::string TypeName(Dwarf_Die *die) {
  Dwarf_Attribute attr;
  Dwarf_Die type;
  if (!dwarf_attr(die, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &type)) return "";
  const char *name = dwarf_diename(&type);
  return name ? name : "";
}

// dwarfStructs(path: string, names: string[]) ->
//   null when the file has no DWARF, else
//   { [name]: { size: number, members: { name, offset, type }[] } } for the names found
// Only structure types that are direct children of a compile unit are looked at (Go's linker
// puts every type there). A member whose offset is not a constant gets offset -1.
Napi::Value DwarfStructs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray())
    throw Napi::TypeError::New(env, "dwarfStructs(path: string, names: string[])");
  std::string path = info[0].As<Napi::String>();
  std::set<std::string> wanted;
  auto names = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < names.Length(); i++) wanted.insert(names.Get(i).As<Napi::String>().Utf8Value());

  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    throw Napi::Error::New(env, "open " + path + ": " + strerror(e));
  }
  Dwarf *dw = dwarf_begin(fd, DWARF_C_READ);
  if (!dw) {
    int e = dwarf_errno();
    close(fd);
    // DWARF_E_NO_DWARF has no public constant: compare with its message
    const char *msg = dwarf_errmsg(e);
    if (msg && strstr(msg, "no DWARF")) return env.Null();
    throw Napi::Error::New(env, std::string("libdw dwarf_begin: ") + (msg ? msg : "unknown error"));
  }
  auto out = Napi::Object::New(env);
  Dwarf_Off off = 0, next;
  size_t hsize;
  while (!wanted.empty() && dwarf_nextcu(dw, off, &next, &hsize, nullptr, nullptr, nullptr) == 0) {
    Dwarf_Die cu, die;
    if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_child(&cu, &die) == 0) {
      do {
        if (dwarf_tag(&die) != DW_TAG_structure_type) continue;
        const char *name = dwarf_diename(&die);
        if (!name || !wanted.count(name)) continue;
        auto s = Napi::Object::New(env);
        Dwarf_Word size = 0;
        Dwarf_Attribute a;
        s.Set("size", dwarf_attr(&die, DW_AT_byte_size, &a) && dwarf_formudata(&a, &size) == 0 ? Napi::Number::New(env, (double)size)
                                                                                                : Napi::Number::New(env, -1));
        auto members = Napi::Array::New(env);
        uint32_t n = 0;
        Dwarf_Die m;
        if (dwarf_child(&die, &m) == 0) {
          do {
            if (dwarf_tag(&m) != DW_TAG_member) continue;
            const char *mname = dwarf_diename(&m);
            Dwarf_Word moff = 0;
            bool constant = dwarf_attr(&m, DW_AT_data_member_location, &a) && dwarf_formudata(&a, &moff) == 0;
            auto mo = Napi::Object::New(env);
            mo.Set("name", mname ? mname : "");
            mo.Set("offset", constant ? (double)moff : -1.0);
            mo.Set("type", TypeName(&m));
            members.Set(n++, mo);
          } while (dwarf_siblingof(&m, &m) == 0);
        }
        s.Set("members", members);
        out.Set(name, s);
        wanted.erase(name);
      } while (!wanted.empty() && dwarf_siblingof(&die, &die) == 0);
    }
    off = next;
  }
  dwarf_end(dw);
  close(fd);
  return out;
}

}  // namespace

void InitGolang(Napi::Env env, Napi::Object exports) {
  exports.Set("x86Instructions", Napi::Function::New(env, X86Instructions));
  exports.Set("dwarfStructs", Napi::Function::New(env, DwarfStructs));
}
