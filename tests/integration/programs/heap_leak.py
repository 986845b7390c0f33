"""A real leak: a cache that only grows (50,000 blocks of 1 KB)."""
cache = []
for i in range(50000):
    cache.append(bytes(1000) + str(i).encode())  # MARK:LEAK
print(len(cache))
