// The one place the OpenCL C++ bindings are configured. Exceptions are on, so every
// OpenCL call's status is checked: a failure throws cl::Error naming the call, which
// the runtime turns into an attnscope::Error with context (kernel, file, device).
#pragma once
#define CL_HPP_TARGET_OPENCL_VERSION 120
#define CL_HPP_MINIMUM_OPENCL_VERSION 120
#define CL_HPP_ENABLE_EXCEPTIONS
#include <CL/opencl.hpp>
