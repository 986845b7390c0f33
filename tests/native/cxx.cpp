// A C++ program: the leak's frames must read as C++ names (demangled),
// shapes::Builder::make(int) under main, above operator new[].
#include <cstdio>

namespace shapes {
struct Builder {
    __attribute__((noinline)) static int *make(int n)
    {
        return new int[n]; // MARK:cxx_new
    }
};
} // namespace shapes

int main()
{
    int *p = shapes::Builder::make(1000);
    p[0] = 1;
    std::printf("%d\n", p[0]);
    return 0;
}
