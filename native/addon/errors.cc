// Refused arguments and failed system calls, as the errors JavaScript sees (see errors.h).
#include "errors.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

namespace mallocscope {

namespace {

constexpr double kExactLimit = 9007199254740992.0;  // 2^53: beyond it a double is no longer exact

Napi::Error WithCode(Napi::Error error, const char* code) {
  error.Value().Set("code", Napi::String::New(error.Env(), code));
  return error;
}

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsNumber()) {
    ThrowType(env, kBadType, std::string("the \"") + name + "\" argument must be a number");
  }
  double value = info[i].As<Napi::Number>().DoubleValue();
  if (std::isnan(value)) ThrowRange(env, kOutOfRange, std::string("\"") + name + "\" is NaN");
  if (!std::isfinite(value) || value != std::floor(value) || std::fabs(value) >= kExactLimit) {
    std::ostringstream text;
    text << "\"" << name << "\" must be a whole number below 2^53, not " << value;
    ThrowRange(env, kOutOfRange, text.str());
  }
  return value;
}

}  // namespace

void ThrowType(Napi::Env env, const char* code, const std::string& message) {
  throw WithCode(Napi::TypeError::New(env, message), code);
}

void ThrowRange(Napi::Env env, const char* code, const std::string& message) {
  throw WithCode(Napi::RangeError::New(env, message), code);
}

void ThrowCoded(Napi::Env env, const char* code, const std::string& message) {
  throw WithCode(Napi::Error::New(env, message), code);
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowType(env, kBadType, "setErrorClass takes a class");
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(info[0].As<Napi::Function>())));
  return env.Undefined();
}

std::string ErrnoText(int err) {
  const char* name = strerrorname_np(err);
  return std::string(name ? name : "E" + std::to_string(err)) + " (" + strerror(err) + ")";
}

void ThrowMallocscope(Napi::Env env, const char* code, const std::string& message, int err, const char* syscall) {
  std::string text = err != 0 ? message + ": " + ErrnoText(err) : message;
  Napi::FunctionReference* make = env.GetInstanceData<Napi::FunctionReference>();
  Napi::Object error;
  if (make != nullptr && !make->IsEmpty()) {
    error = make->New({Napi::String::New(env, code), Napi::String::New(env, text)});
  } else {
    error = Napi::Error::New(env, text).Value();
    error.Set("code", Napi::String::New(env, code));
  }
  if (err != 0) {
    error.Set("errno", Napi::Number::New(env, -err));
    error.Set("syscall", Napi::String::New(env, syscall));
  }
  throw Napi::Error(env, error);
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& detail) {
  const char* name = strerrorname_np(err);
  std::string code = name ? name : "E" + std::to_string(err);
  std::string message = std::string(syscall) + " failed: " + ErrnoText(err);
  if (!detail.empty()) message += ": " + detail;
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("code", Napi::String::New(env, code));
  error.Value().Set("errno", Napi::Number::New(env, -err));
  error.Value().Set("syscall", Napi::String::New(env, syscall));
  return error;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& detail) {
  throw ErrnoError(env, err, syscall, detail);
}

uint64_t ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double value = ArgNumber(info, i, name);
  if (value < 0) {
    std::ostringstream text;
    text << "\"" << name << "\" must not be negative, not " << value;
    ThrowRange(info.Env(), kOutOfRange, text.str());
  }
  return static_cast<uint64_t>(value);
}

uint64_t ArgPageMultiple(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t page, bool nonzero) {
  uint64_t value = ArgUint(info, i, name);
  if (value % page != 0) {
    ThrowRange(info.Env(), kUnaligned, std::string("\"") + name + "\" must be a multiple of the page size (" + std::to_string(page) + "), not " + Hex(value));
  }
  if (nonzero && value == 0) ThrowRange(info.Env(), kOutOfRange, std::string("\"") + name + "\" must not be 0");
  return value;
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<int64_t>(ArgNumber(info, i, name));
}

std::string Hex(uint64_t value) {
  std::ostringstream text;
  text << "0x" << std::hex << value;
  return text.str();
}

}  // namespace mallocscope
