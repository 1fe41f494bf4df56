// cxxhot: a C++ server whose hot spot is a method in a namespace,
// vpn::Session::pump, so that a profile must demangle
// _ZN3vpn7Session4pumpEv into the name a C++ developer knows. Built with
// g++ -O2 -g: symbols and DWARF lines are there; noinline keeps the method
// a frame of its own at -O2.
//
// Prints "ready" once the thread named pump runs.

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

namespace vpn {

class Session {
public:
	explicit Session(uint64_t seed) : state_(seed) {}
	__attribute__((noinline)) void pump();
	uint64_t state() const { return state_; }

private:
	uint64_t state_;
};

// The result goes to a volatile sink so the compiler cannot drop the loop.
static volatile uint64_t sink;

void Session::pump()
{
	for (;;) {
		for (int i = 0; i < 1000000; i++) {
			state_ ^= state_ << 13;
			state_ ^= state_ >> 7;
			state_ ^= state_ << 17;
		}
		sink = state_;
	}
}

} // namespace vpn

static void *run(void *arg)
{
	static_cast<vpn::Session *>(arg)->pump();
	return nullptr;
}

int main()
{
	static vpn::Session session(88172645463325252ULL);
	pthread_t t;

	if (pthread_create(&t, nullptr, run, &session) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	pthread_setname_np(t, "pump");
	printf("ready\n");
	fflush(stdout);
	pthread_join(t, nullptr);
	return 0;
}
