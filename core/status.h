// Errors: Status (a code + a message) and Expected<T> (a value or a Status).
//
// Library code returns Expected/Status across module seams; the C ABI turns them into
// anvil_status codes plus anvil_last_error(). Expected::value() on an error throws
// anvil::Error, which is convenient in tools and tests and never crosses the C ABI.
#pragma once

#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <string>
#include <utility>
#include <variant>

namespace anvil {

enum class StatusCode {
  ok = 0,
  invalid_argument,  // the caller passed something wrong
  not_found,         // a file, key or tensor that should be there is not
  io_error,          // open/read/write/mmap failed
  corrupt_file,      // a file is malformed (hostile or truncated)
  unsupported,       // valid but not something anvil implements
  out_of_memory,
  internal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == StatusCode::ok; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt_file: tensor 'x': offset 123 + size 456 is past the end of the file (size 200)"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::ok;
  std::string message_;
};

// Thrown only by Expected::value()/throw_if_error(); carries the Status.
class Error : public std::runtime_error {
 public:
  explicit Error(Status s) : std::runtime_error(s.to_string()), status_(std::move(s)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

inline void throw_if_error(const Status& s) {
  if (!s.is_ok()) throw Error(s);
}

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT: implicit on purpose
  Expected(Status status) : v_(std::move(status)) {
    if (std::get<Status>(v_).is_ok()) v_ = Status(StatusCode::internal, "Expected built from an ok Status");
  }

  bool has_value() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    if (!has_value()) throw Error(std::get<Status>(v_));
    return std::get<T>(v_);
  }
  const T& value() const& {
    if (!has_value()) throw Error(std::get<Status>(v_));
    return std::get<T>(v_);
  }
  T&& value() && {
    if (!has_value()) throw Error(std::get<Status>(v_));
    return std::get<T>(std::move(v_));
  }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The error; Status::ok() when a value is held.
  Status status() const { return has_value() ? Status::ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

inline void append_part(std::string& out, const std::string& s) { out += s; }
inline void append_part(std::string& out, std::string_view s) { out += s; }
inline void append_part(std::string& out, const char* s) { out += s; }
inline void append_part(std::string& out, char c) { out += c; }
template <typename T>
  requires std::is_arithmetic_v<T>
void append_part(std::string& out, T v) {
  out += std::to_string(v);
}

// Builds a Status with a formatted message: make_error(StatusCode::corrupt_file, "bad ", x).
template <typename... Args>
Status make_error(StatusCode code, Args&&... parts) {
  std::string msg;
  (append_part(msg, std::forward<Args>(parts)), ...);
  return Status(code, std::move(msg));
}

#define ANVIL_RETURN_IF_ERROR(expr)             \
  do {                                          \
    ::anvil::Status _anvil_s = (expr);          \
    if (!_anvil_s.is_ok()) return _anvil_s;     \
  } while (0)

}  // namespace anvil
