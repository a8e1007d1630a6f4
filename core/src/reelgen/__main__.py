from reelgen.cli import main

main()
