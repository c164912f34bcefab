#include "moat/base/clock.h"

namespace moat {

const SystemClock& SystemClock::instance() {
  static const SystemClock clock;
  return clock;
}

}  // namespace moat
