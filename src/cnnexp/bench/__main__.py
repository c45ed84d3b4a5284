from cnnexp.bench import main

main()
