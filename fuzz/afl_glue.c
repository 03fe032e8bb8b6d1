/* Compiled with the plain C compiler, never instrumented.
 *
 * afl-g++ (AFL++'s GCC mode without the plugin) instruments through afl-as, whose injected code
 * in every object starts a fork server and maps the coverage map on its first edge, unless the
 * common symbol __afl_global_area_ptr already points to a map. AFL++'s compiler runtime
 * (afl-compiler-rt.o), linked for its persistent loop and shared-memory test cases, maps the map
 * in an early constructor (priority 3) and runs the one fork server. This constructor runs between
 * the two, before any instrumented code, and hands the runtime's map to the afl-as code, so there
 * is one map and one fork server. Outside afl-fuzz the runtime's map is a private dummy. */
extern unsigned char* __afl_area_ptr;
unsigned char* __afl_global_area_ptr;

__attribute__((constructor(101))) static void vnetipamShareAflMap(void) {
  __afl_global_area_ptr = __afl_area_ptr;
}
