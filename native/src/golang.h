// SPDX-License-Identifier: MIT
// capstone + libdw bindings for the analysis of Go binaries (golang.cc)
#pragma once
#include "napi_setup.h"

void InitGolang(Napi::Env env, Napi::Object exports);
