// On/off switches read from the environment (TESSERA_PDL, TESSERA_FUSED_DECODE, ...), for
// benchmarks that compare a path with and without something.
#pragma once

namespace tessera {

// The switch `name`: unset or empty gives `fallback`, "1" on, "0" off; anything else is an Error
// naming the variable and what it takes.
bool env_switch(const char* name, bool fallback);

}  // namespace tessera
