// A C++ program: the leak's frames must read as C++ names (demangled),
// shapes::Builder::make(int) under main, above operator new[]. Five more
// leaks through `new`, std::vector and std::string at five lines: five
// sites, each named after its own function, not after operator new.
#include <cstdio>
#include <string>
#include <vector>

namespace shapes {
struct Builder {
    __attribute__((noinline)) static int *make(int n)
    {
        return new int[n]; // MARK:cxx_new
    }
};
} // namespace shapes

struct Node {
    long value[4];
};

std::vector<void *> kept;

__attribute__((noinline)) void one_node() { kept.push_back(new Node()); } // MARK:agg_node

__attribute__((noinline)) void nodes_array() { kept.push_back(new Node[3]); } // MARK:agg_array

__attribute__((noinline)) void a_vector()
{
    auto *v = new std::vector<long>(); // MARK:agg_vector_object
    v->reserve(100);                   // MARK:agg_vector_data
    kept.push_back(v);
}

__attribute__((noinline)) void a_string()
{
    kept.push_back(new std::string(200, 'x')); // MARK:agg_string
}

int main()
{
    kept.reserve(16);
    int *p = shapes::Builder::make(1000);
    p[0] = 1;
    one_node();
    nodes_array();
    a_vector();
    a_string();
    std::printf("%d\n", p[0]);
    return 0;
}
