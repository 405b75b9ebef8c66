// SPDX-License-Identifier: MIT
// the one place napi.h is included
#pragma once
#include <napi.h>
